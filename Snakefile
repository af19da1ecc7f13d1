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

TRAIN_THREADS = workflow.cores  # a training job takes the machine: two at once halve each other

# Checkpoints the DAG evaluates: label -> (stage producing it, model path or hub id).
MODELS = {
    "base": ("pretrain", f"{RES}/pretrain/model") if SCRATCH else (None, CFG.model.name_or_path),
    "r1_zero": ("r1_zero", f"{RES}/r1_zero/model"),
    "cold_start_sft": ("cold_start_sft", f"{RES}/cold_start_sft/model"),
    "reasoning_rl": ("reasoning_rl", f"{RES}/reasoning_rl/model"),
    "general_sft": ("general_sft", f"{RES}/general_sft/model"),
    "all_scenario_rl": ("all_scenario_rl", f"{RES}/all_scenario_rl/model"),
}
RMS = ("helpfulness_rm", "harmlessness_rm")
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
        "{params.run} > {log} 2>&1"


rule pretrain:
    input:
        cfg=VIEW["pretrain"],
        data=rules.data.output.done,
    output:
        model=directory(f"{RES}/pretrain/model"),
        done=f"{RES}/pretrain/done.json",
    threads: TRAIN_THREADS
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
        "{params.run} 'io.upstream={params.upstream}' > {log} 2>&1"


rule cold_start_sft:
    input:
        cfg=VIEW["cold_start_sft"],
        data=rules.data.output.done,
        base=done(MODELS["base"][0]),
    output:
        model=directory(f"{RES}/cold_start_sft/model"),
        done=f"{RES}/cold_start_sft/done.json",
    threads: TRAIN_THREADS
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
        "{params.run} io.init_model={params.base}"
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
    threads: TRAIN_THREADS
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
        "{params.run} io.init_model={params.base} 'io.upstream={params.upstream}' > {log} 2>&1"


rule reasoning_rl:
    input:
        cfg=VIEW["reasoning_rl"],
        data=rules.data.output.done,
        init=rules.cold_start_sft.output.done,
    output:
        model=directory(f"{RES}/reasoning_rl/model"),
        curves=report(f"{RES}/reasoning_rl/curves.png", category="RL curves"),
        done=f"{RES}/reasoning_rl/done.json",
    threads: TRAIN_THREADS
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
        "{params.run} io.init_model={params.init} 'io.upstream={params.upstream}' > {log} 2>&1"


checkpoint rs_shards:
    input:
        cfg=VIEW["rejection_sampling"],
        data=rules.data.output.done,
    output:
        directory(f"{RS}/shards"),
    params:
        code=stage_code("stages.rejection_sampling"),
        run=run("rejection_sampling", f"{RS}/shards"),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/rejection_sampling/shards.log",
    benchmark:
        f"{RES}/benchmarks/rejection_sampling/shards.tsv"
    shell:
        "{params.run} io.part=shards > {log} 2>&1"


rule rs_sample:
    input:
        cfg=VIEW["rejection_sampling"],
        shard=f"{RS}/shards/prompts_{{shard}}.jsonl",
        init=rules.reasoning_rl.output.done,
    output:
        kept=f"{RS}/samples/{{shard}}/kept.jsonl",
        report=f"{RS}/samples/{{shard}}/report.json",
        done=f"{RS}/samples/{{shard}}/done.json",
    threads: TRAIN_THREADS
    params:
        code=stage_code("stages.rejection_sampling"),
        run=lambda wc: run("rejection_sampling", f"{RS}/samples/{wc.shard}"),
        init=MODELS["reasoning_rl"][1],
        upstream=upstream_arg([f"{RES}/data", f"{RES}/reasoning_rl"]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/rejection_sampling/sample_{{shard}}.log",
    benchmark:
        f"{RES}/benchmarks/rejection_sampling/sample_{{shard}}.tsv"
    shell:
        "{params.run} io.part=sample io.shard={input.shard} io.init_model={params.init} io.label=shard{wildcards.shard}"
        " 'io.upstream={params.upstream}' > {log} 2>&1"


def sampled_shards(wildcards):
    """Every shard the checkpoint wrote (known only once it has run)."""
    shards = checkpoints.rs_shards.get().output[0]
    ids = glob_wildcards(os.path.join(shards, "prompts_{shard}.jsonl")).shard
    return expand(f"{RS}/samples/{{shard}}/done.json", shard=sorted(ids))


rule rejection_sampling:
    input:
        cfg=VIEW["rejection_sampling"],
        shards=sampled_shards,
    output:
        data=f"{RS}/reasoning_sft.jsonl",
        report=f"{RS}/report.json",
        lengths=report(f"{RS}/lengths.png", category="Rejection sampling"),
        done=f"{RS}/done.json",
    params:
        code=stage_code("stages.rejection_sampling"),
        run=run("rejection_sampling", RS),
        upstream=upstream_arg([f"{RES}/data", f"{RES}/reasoning_rl"]),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/rejection_sampling/merge.log",
    benchmark:
        f"{RES}/benchmarks/rejection_sampling/merge.tsv"
    shell:
        "{params.run} io.part=merge 'io.upstream={params.upstream}' > {log} 2>&1"


rule general_sft:
    input:
        cfg=VIEW["general_sft"],
        data=rules.data.output.done,
        init=done(GENERAL_INIT[0]),
        reasoning=rules.rejection_sampling.output.data,
        sampled=rules.rejection_sampling.output.done,
    output:
        model=directory(f"{RES}/general_sft/model"),
        done=f"{RES}/general_sft/done.json",
    threads: TRAIN_THREADS
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
        "{params.run} io.init_model={params.init} general_sft.reasoning_data={input.reasoning}"
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
    threads: TRAIN_THREADS
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
        "{params.run} io.init_model={params.init} 'io.upstream={params.upstream}' > {log} 2>&1"


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
    threads: TRAIN_THREADS
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
        "{params.run} io.init_model={params.init} {params.rms} 'io.upstream={params.upstream}' > {log} 2>&1"


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
    threads: TRAIN_THREADS
    params:
        code=stage_code("stages.evaluate"),
        run=lambda wc: run("evaluate", f"{RES}/eval/{wc.label}"),
        template=lambda wc: TEMPLATE.get(wc.label, CFG.evaluate.template),
        model=lambda wc: MODELS[wc.label][1],
        upstream=lambda wc: upstream_arg([f"{RES}/data"] + stage_dir(MODELS[wc.label][0])),
    conda:
        "envs/r1flow.yaml"
    log:
        f"{RES}/logs/evaluate_{{label}}.log",
    benchmark:
        f"{RES}/benchmarks/evaluate_{{label}}.tsv"
    shell:
        "{params.run} io.init_model={params.model} io.label={wildcards.label} evaluate.template={params.template}"
        " 'io.upstream={params.upstream}' > {log} 2>&1"
