# r1flow — the DeepSeek-R1 recipe as a Snakemake DAG.
#
#   snakemake --cores 2                                  # the embedded default (experiment=tiny)
#   snakemake --cores 2 --config experiment=smoke        # seconds-scale version of the same graph
#   snakemake --profile profiles/slurm --config experiment=qwen_math
#
# Snakemake owns paths and scheduling; Hydra (conf/) owns every hyperparameter; MLflow owns
# lineage. Each rule gets its stage's resolved config view as an input file and the digest of
# the code it runs as a param, so editing either reruns that stage and its descendants only.

import os
import sys

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, workflow.basedir)  # this checkout's code, even when another copy is installed

from r1flow.workflow import resolve_experiment, stage_code

EXPERIMENT = config.get("experiment", "tiny")
CFG, VIEW = resolve_experiment(EXPERIMENT)
RES = CFG.results_dir
PY = sys.executable
SCRATCH = CFG.model.init == "scratch"


def run(stage, out):
    """The command of a stage: Hydra composes the same experiment; Snakemake gives the paths."""
    return f"{PY} -m stages.{stage} experiment={EXPERIMENT} hydra.run.dir={out} io.out_dir={out} io.data_dir={RES}/data"

# Threads per job (torch's intra-op threads): the tiny world's models are too small to use two
# cores well — measured here, two 1-thread generation jobs side by side sample 1.45x the tokens of
# one 2-thread job — so by default each job takes one core and Snakemake runs independent jobs in
# parallel. On a cluster or a big machine: --config job_threads=16.
JOB_THREADS = min(int(config.get("job_threads", 1)), workflow.cores)
CRITICAL = 10  # priority of the main chain (base -> ... -> students), ahead of side jobs (evaluations)

# Checkpoints the DAG evaluates: label -> (stage producing it, model path or hub id).
MODELS = {
    "base": ("pretrain", f"{RES}/pretrain/model") if SCRATCH else (None, CFG.model.name_or_path),
    "r1_zero": ("r1_zero", f"{RES}/r1_zero/model"),
    "cold_start_sft": ("cold_start_sft", f"{RES}/cold_start_sft/model"),
    "reasoning_rl": ("reasoning_rl", f"{RES}/reasoning_rl/model"),
    "general_sft": ("general_sft", f"{RES}/general_sft/model"),
    "all_scenario_rl": ("all_scenario_rl", f"{RES}/all_scenario_rl/model"),
}
# Students (sizes are config: `students`); each is distilled, the `rl_only_students` also get
# cold-start SFT + GRPO on their own (the paper's distillation-vs-RL comparison).
STUDENTS = list(CFG.students)
RL_ONLY = list(CFG.rl_only_students)
SD = f"{RES}/students"
for s in STUDENTS:
    MODELS[f"base_{s}"] = (f"students/{s}/pretrain", f"{SD}/{s}/pretrain/model")
    MODELS[f"student_{s}"] = (f"students/{s}/distill", f"{SD}/{s}/distill/model")
for s in RL_ONLY:
    MODELS[f"rl_only_{s}"] = (f"students/{s}/reasoning_rl", f"{SD}/{s}/reasoning_rl/model")
# Checkpoints trained on non-reasoning data are also evaluated on evaluate.general_splits.
GENERAL = {"general_sft", "all_scenario_rl", *(f"student_{s}" for s in STUDENTS)}
RMS = ("helpfulness_rm", "harmlessness_rm")
# Curation stages (sample, verify, filter) -> the stage whose model they sample.
CURATIONS = {"rejection_sampling": "reasoning_rl", "distill_data": "all_scenario_rl"}
# General SFT restarts from the base model (R1) unless general_sft.start_from names another stage.
GENERAL_INIT = MODELS["base"] if CFG.general_sft.start_from == "base" else MODELS[CFG.general_sft.start_from]
RS = f"{RES}/rejection_sampling"
# Prompt template each checkpoint is evaluated with (R1-Zero was trained on its own template).
TEMPLATE = {"r1_zero": CFG.r1_zero.template}


def done(stage):
    return f"{RES}/{stage}/done.json" if stage else []


def stage_dir(stage):
    return [f"{RES}/{stage}"] if stage else []


def upstream_arg(dirs):
    return "[" + ",".join(dirs) + "]"


def eval_splits(label):
    splits = list(CFG.evaluate.splits) + (list(CFG.evaluate.general_splits) if label in GENERAL else [])
    return "[" + ",".join(splits) + "]"


onstart:
    import tracking

    os.environ[tracking.PIPELINE_RUN_ENV] = tracking.start_pipeline_run(CFG.name)


onsuccess:
    import tracking

    if tracking.PIPELINE_RUN_ENV in os.environ:
        tracking.end_pipeline_run(os.environ[tracking.PIPELINE_RUN_ENV], "FINISHED")


onerror:
    import tracking

    if tracking.PIPELINE_RUN_ENV in os.environ:
        tracking.end_pipeline_run(os.environ[tracking.PIPELINE_RUN_ENV], "FAILED")


rule all:
    input:
        expand(f"{RES}/eval/{{label}}/metrics.json", label=list(MODELS)),
        f"{RES}/report/done.json",


rule data:
    input:
        cfg=VIEW["data"],
    output:
        train=f"{RES}/data/train.jsonl",
        heldout=f"{RES}/data/heldout.jsonl",
        hard=f"{RES}/data/hard.jsonl",
        cold_start=f"{RES}/data/cold_start.jsonl",
        done=f"{RES}/data/done.json",
    params:
        code=stage_code("stages.data"),
        run=run("data", f"{RES}/data"),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/data.log",
    benchmark:
        f"{RES}/benchmarks/data.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} > {log} 2>&1"


rule pretrain:
    input:
        cfg=VIEW["pretrain"],
        data=rules.data.output.done,
    output:
        model=directory(f"{RES}/pretrain/model"),
        done=f"{RES}/pretrain/done.json",
    priority: CRITICAL
    # every other stage waits for the base: measured, 2 threads pretrain it in 195 s against 307 s on one
    threads: max(JOB_THREADS, min(2, workflow.cores))
    params:
        code=stage_code("stages.pretrain"),
        run=run("pretrain", f"{RES}/pretrain"),
        upstream=upstream_arg([f"{RES}/data"]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/pretrain.log",
    benchmark:
        f"{RES}/benchmarks/pretrain.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} 'io.upstream={params.upstream}' > {log} 2>&1"


rule cold_start_sft:
    input:
        cfg=VIEW["cold_start_sft"],
        data=rules.data.output.done,
        base=done(MODELS["base"][0]),
    output:
        model=directory(f"{RES}/cold_start_sft/model"),
        done=f"{RES}/cold_start_sft/done.json",
    priority: CRITICAL
    threads: JOB_THREADS
    params:
        code=stage_code("stages.cold_start_sft"),
        run=run("cold_start_sft", f"{RES}/cold_start_sft"),
        base=MODELS["base"][1],
        upstream=upstream_arg([f"{RES}/data"] + stage_dir(MODELS["base"][0])),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/cold_start_sft.log",
    benchmark:
        f"{RES}/benchmarks/cold_start_sft.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.init_model={params.base}"
        " 'io.upstream={params.upstream}' > {log} 2>&1"


rule r1_zero:
    input:
        cfg=VIEW["r1_zero"],
        data=rules.data.output.done,
        base=done(MODELS["base"][0]),
    output:
        model=directory(f"{RES}/r1_zero/model"),
        curves=report(f"{RES}/r1_zero/curves.png", category="RL curves"),
        done=f"{RES}/r1_zero/done.json",
    threads: JOB_THREADS
    params:
        code=stage_code("stages.r1_zero"),
        run=run("r1_zero", f"{RES}/r1_zero"),
        base=MODELS["base"][1],
        upstream=upstream_arg([f"{RES}/data"] + stage_dir(MODELS["base"][0])),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/r1_zero.log",
    benchmark:
        f"{RES}/benchmarks/r1_zero.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.init_model={params.base} 'io.upstream={params.upstream}' > {log} 2>&1"


rule reasoning_rl:
    input:
        cfg=VIEW["reasoning_rl"],
        data=rules.data.output.done,
        init=rules.cold_start_sft.output.done,
    output:
        model=directory(f"{RES}/reasoning_rl/model"),
        curves=report(f"{RES}/reasoning_rl/curves.png", category="RL curves"),
        done=f"{RES}/reasoning_rl/done.json",
    priority: CRITICAL
    threads: JOB_THREADS
    params:
        code=stage_code("stages.reasoning_rl"),
        run=run("reasoning_rl", f"{RES}/reasoning_rl"),
        init=MODELS["cold_start_sft"][1],
        upstream=upstream_arg([f"{RES}/data", f"{RES}/cold_start_sft"]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/reasoning_rl.log",
    benchmark:
        f"{RES}/benchmarks/reasoning_rl.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.init_model={params.init} 'io.upstream={params.upstream}' > {log} 2>&1"


checkpoint sample_shards:
    input:
        cfg=lambda wc: VIEW[wc.curation],
        data=rules.data.output.done,
    output:
        directory(f"{RES}/{{curation}}/shards"),
    wildcard_constraints:
        curation="|".join(CURATIONS),
    priority: CRITICAL
    params:
        code=lambda wc: stage_code(f"stages.{wc.curation}"),
        run=lambda wc: run(wc.curation, f"{RES}/{wc.curation}/shards"),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/{{curation}}/shards.log",
    benchmark:
        f"{RES}/benchmarks/{{curation}}/shards.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.part=shards > {log} 2>&1"


rule sample:
    input:
        cfg=lambda wc: VIEW[wc.curation],
        shard=f"{RES}/{{curation}}/shards/prompts_{{shard}}.jsonl",
        init=lambda wc: done(CURATIONS[wc.curation]),
    output:
        kept=f"{RES}/{{curation}}/samples/{{shard}}/kept.jsonl",
        report=f"{RES}/{{curation}}/samples/{{shard}}/report.json",
        done=f"{RES}/{{curation}}/samples/{{shard}}/done.json",
    wildcard_constraints:
        curation="|".join(CURATIONS),
    threads: JOB_THREADS
    priority: CRITICAL
    params:
        code=lambda wc: stage_code(f"stages.{wc.curation}"),
        run=lambda wc: run(wc.curation, f"{RES}/{wc.curation}/samples/{wc.shard}"),
        init=lambda wc: MODELS[CURATIONS[wc.curation]][1],
        upstream=lambda wc: upstream_arg([f"{RES}/data", f"{RES}/{CURATIONS[wc.curation]}"]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/{{curation}}/sample_{{shard}}.log",
    benchmark:
        f"{RES}/benchmarks/{{curation}}/sample_{{shard}}.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.part=sample io.shard={input.shard} io.init_model={params.init} io.label=shard{wildcards.shard}"
        " 'io.upstream={params.upstream}' > {log} 2>&1"


def sampled_shards(wildcards):
    """Every shard the checkpoint wrote (known only once it has run)."""
    shards = checkpoints.sample_shards.get(curation=wildcards.curation).output[0]
    ids = glob_wildcards(os.path.join(shards, "prompts_{shard}.jsonl")).shard
    return expand(f"{RES}/{wildcards.curation}/samples/{{shard}}/done.json", shard=sorted(ids))


rule curate:
    input:
        cfg=lambda wc: VIEW[wc.curation],
        shards=sampled_shards,
    output:
        data=f"{RES}/{{curation}}/reasoning_sft.jsonl",
        report=f"{RES}/{{curation}}/report.json",
        lengths=report(f"{RES}/{{curation}}/lengths.png", category="Curated data", subcategory="{curation}"),
        done=f"{RES}/{{curation}}/done.json",
    wildcard_constraints:
        curation="|".join(CURATIONS),
    priority: CRITICAL
    params:
        code=lambda wc: stage_code(f"stages.{wc.curation}"),
        run=lambda wc: run(wc.curation, f"{RES}/{wc.curation}"),
        upstream=lambda wc: upstream_arg([f"{RES}/data", f"{RES}/{CURATIONS[wc.curation]}"]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/{{curation}}/merge.log",
    benchmark:
        f"{RES}/benchmarks/{{curation}}/merge.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.part=merge 'io.upstream={params.upstream}' > {log} 2>&1"


rule general_sft:
    input:
        cfg=VIEW["general_sft"],
        data=rules.data.output.done,
        init=done(GENERAL_INIT[0]),
        reasoning=f"{RS}/reasoning_sft.jsonl",
        sampled=f"{RS}/done.json",
    output:
        model=directory(f"{RES}/general_sft/model"),
        done=f"{RES}/general_sft/done.json",
    priority: CRITICAL
    threads: JOB_THREADS
    params:
        code=stage_code("stages.general_sft"),
        run=run("general_sft", f"{RES}/general_sft"),
        init=GENERAL_INIT[1],
        upstream=upstream_arg([f"{RES}/data"] + stage_dir(GENERAL_INIT[0]) + [RS]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/general_sft.log",
    benchmark:
        f"{RES}/benchmarks/general_sft.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.init_model={params.init} general_sft.reasoning_data={input.reasoning}"
        " 'io.upstream={params.upstream}' > {log} 2>&1"


rule reward_model:
    input:
        cfg=lambda wc: VIEW[wc.rm],
        data=rules.data.output.done,
        init=rules.general_sft.output.done,
    output:
        model=directory(f"{RES}/{{rm}}/model"),
        done=f"{RES}/{{rm}}/done.json",
    wildcard_constraints:
        rm="|".join(RMS),
    priority: CRITICAL
    threads: JOB_THREADS
    params:
        code=lambda wc: stage_code(f"stages.{wc.rm}"),
        run=lambda wc: run(wc.rm, f"{RES}/{wc.rm}"),
        init=MODELS["general_sft"][1],
        upstream=upstream_arg([f"{RES}/data", f"{RES}/general_sft"]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/{{rm}}.log",
    benchmark:
        f"{RES}/benchmarks/{{rm}}.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.init_model={params.init} 'io.upstream={params.upstream}' > {log} 2>&1"


rule all_scenario_rl:
    input:
        cfg=VIEW["all_scenario_rl"],
        data=rules.data.output.done,
        init=rules.general_sft.output.done,
        rms=expand(f"{RES}/{{rm}}/done.json", rm=RMS),
    output:
        model=directory(f"{RES}/all_scenario_rl/model"),
        curves=report(f"{RES}/all_scenario_rl/curves.png", category="RL curves"),
        done=f"{RES}/all_scenario_rl/done.json",
    priority: CRITICAL
    threads: JOB_THREADS
    params:
        code=stage_code("stages.all_scenario_rl"),
        run=run("all_scenario_rl", f"{RES}/all_scenario_rl"),
        init=MODELS["general_sft"][1],
        rms=" ".join(f"all_scenario_rl.reward_models.{rm}={RES}/{rm}/model" for rm in RMS),
        upstream=upstream_arg([f"{RES}/data", f"{RES}/general_sft"] + [f"{RES}/{rm}" for rm in RMS]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/all_scenario_rl.log",
    benchmark:
        f"{RES}/benchmarks/all_scenario_rl.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.init_model={params.init} {params.rms} 'io.upstream={params.upstream}' > {log} 2>&1"


rule evaluate:
    input:
        cfg=VIEW["evaluate"],
        data=rules.data.output.done,
        model=lambda wc: done(MODELS[wc.label][0]),
    output:
        metrics=f"{RES}/eval/{{label}}/metrics.json",
        samples=f"{RES}/eval/{{label}}/samples.jsonl",
        plot=report(f"{RES}/eval/{{label}}/pass_at_k.png", category="Evaluation", subcategory="{label}"),
    wildcard_constraints:
        label="|".join(MODELS),
    threads: JOB_THREADS
    params:
        code=stage_code("stages.evaluate"),
        run=lambda wc: run("evaluate", f"{RES}/eval/{wc.label}"),
        template=lambda wc: TEMPLATE.get(wc.label, CFG.evaluate.template),
        model=lambda wc: MODELS[wc.label][1],
        upstream=lambda wc: upstream_arg([f"{RES}/data"] + stage_dir(MODELS[wc.label][0])),
        splits=lambda wc: eval_splits(wc.label),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/evaluate_{{label}}.log",
    benchmark:
        f"{RES}/benchmarks/evaluate_{{label}}.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.init_model={params.model} io.label={wildcards.label} evaluate.template={params.template}"
        " 'evaluate.splits={params.splits}' 'io.upstream={params.upstream}' > {log} 2>&1"


# ---------------------------------------------------------------- students (distillation, RL-only)
def student_run(stage, wc):
    return run(stage, f"{SD}/{wc.student}/{stage}") + f" student={wc.student}"


rule student_pretrain:
    input:
        cfg=lambda wc: VIEW[f"pretrain@{wc.student}"],
        data=rules.data.output.done,
    output:
        model=directory(f"{SD}/{{student}}/pretrain/model"),
        done=f"{SD}/{{student}}/pretrain/done.json",
    wildcard_constraints:
        student="|".join(STUDENTS) or "^$",
    threads: JOB_THREADS
    params:
        code=stage_code("stages.pretrain"),
        run=lambda wc: student_run("pretrain", wc),
        upstream=upstream_arg([f"{RES}/data"]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/students/{{student}}/pretrain.log",
    benchmark:
        f"{RES}/benchmarks/students/{{student}}/pretrain.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} 'io.upstream={params.upstream}' > {log} 2>&1"


rule distill:
    input:
        cfg=lambda wc: VIEW[f"distill@{wc.student}"],
        data=rules.data.output.done,
        base=f"{SD}/{{student}}/pretrain/done.json",
        reasoning=f"{RES}/distill_data/reasoning_sft.jsonl",
        sampled=f"{RES}/distill_data/done.json",
    output:
        model=directory(f"{SD}/{{student}}/distill/model"),
        done=f"{SD}/{{student}}/distill/done.json",
    wildcard_constraints:
        student="|".join(STUDENTS) or "^$",
    priority: CRITICAL
    threads: JOB_THREADS
    params:
        code=stage_code("stages.distill"),
        run=lambda wc: student_run("distill", wc),
        init=lambda wc: f"{SD}/{wc.student}/pretrain/model",
        upstream=lambda wc: upstream_arg([f"{RES}/data", f"{SD}/{wc.student}/pretrain", f"{RES}/distill_data"]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/students/{{student}}/distill.log",
    benchmark:
        f"{RES}/benchmarks/students/{{student}}/distill.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.init_model={params.init} distill.reasoning_data={input.reasoning}"
        " 'io.upstream={params.upstream}' > {log} 2>&1"


rule student_cold_start:
    input:
        cfg=lambda wc: VIEW[f"cold_start_sft@{wc.student}"],
        data=rules.data.output.done,
        base=f"{SD}/{{student}}/pretrain/done.json",
    output:
        model=directory(f"{SD}/{{student}}/cold_start_sft/model"),
        done=f"{SD}/{{student}}/cold_start_sft/done.json",
    wildcard_constraints:
        student="|".join(RL_ONLY) or "^$",
    threads: JOB_THREADS
    params:
        code=stage_code("stages.cold_start_sft"),
        run=lambda wc: student_run("cold_start_sft", wc),
        init=lambda wc: f"{SD}/{wc.student}/pretrain/model",
        upstream=lambda wc: upstream_arg([f"{RES}/data", f"{SD}/{wc.student}/pretrain"]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/students/{{student}}/cold_start_sft.log",
    benchmark:
        f"{RES}/benchmarks/students/{{student}}/cold_start_sft.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.init_model={params.init} 'io.upstream={params.upstream}' > {log} 2>&1"


rule student_rl:
    input:
        cfg=lambda wc: VIEW[f"reasoning_rl@{wc.student}"],
        data=rules.data.output.done,
        init=f"{SD}/{{student}}/cold_start_sft/done.json",
    output:
        model=directory(f"{SD}/{{student}}/reasoning_rl/model"),
        curves=report(f"{SD}/{{student}}/reasoning_rl/curves.png", category="RL curves", subcategory="students"),
        done=f"{SD}/{{student}}/reasoning_rl/done.json",
    wildcard_constraints:
        student="|".join(RL_ONLY) or "^$",
    threads: JOB_THREADS
    params:
        code=stage_code("stages.reasoning_rl"),
        run=lambda wc: student_run("reasoning_rl", wc),
        init=lambda wc: f"{SD}/{wc.student}/cold_start_sft/model",
        upstream=lambda wc: upstream_arg([f"{RES}/data", f"{SD}/{wc.student}/cold_start_sft"]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/students/{{student}}/reasoning_rl.log",
    benchmark:
        f"{RES}/benchmarks/students/{{student}}/reasoning_rl.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} io.init_model={params.init} 'io.upstream={params.upstream}' > {log} 2>&1"


# ---------------------------------------------------------------- report and registry
rule report:
    input:
        cfg=VIEW["report"],
        metrics=expand(f"{RES}/eval/{{label}}/metrics.json", label=list(MODELS)),
    output:
        table=report(f"{RES}/report/results.md", category="Report"),
        csv=f"{RES}/report/results.csv",
        claims=report(f"{RES}/report/claims.md", category="Report"),
        plots=report(
            multiext(f"{RES}/report/", "pass_at_1.png", "pass_at_k.png", "rl_curves.png", "distill_vs_rl.png"),
            category="Report",
        ),
        done=f"{RES}/report/done.json",
    params:
        code=stage_code("stages.report"),
        run=run("report", f"{RES}/report"),
        upstream=upstream_arg([f"{RES}/{stage}" for stage, _ in MODELS.values() if stage]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/report.log",
    benchmark:
        f"{RES}/benchmarks/report.tsv"
    shell:
        "{params.run} trainer.num_threads={threads} 'io.upstream={params.upstream}' > {log} 2>&1"
