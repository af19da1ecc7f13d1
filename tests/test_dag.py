"""The stage table (r1flow/dag.py): every stage is declared once and everything derives from it —
the edges, the lineage a stage records, its default inputs by hand, the labels of the report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from r1flow.config import compose
from r1flow.config.root import RootConfig
from r1flow.dag import BASE, BY_NAME, DAG, STAGES, Kind
from r1flow.harness.entry import find_node, resolve_io

ROOT = Path(__file__).resolve().parent.parent


def test_every_stage_has_its_entry_module_config_section_and_rule_file():
    sections = set(RootConfig.__dataclass_fields__)
    for stage in STAGES:
        entry = (ROOT / "stages" / f"{stage.name}.py").read_text()
        assert f'@stage_main("{stage.name}")' in entry, stage.name
        assert stage.name in sections, stage.name
        assert (ROOT / "rules" / f"{stage.phase}.smk").is_file(), stage.phase
        for ref in (stage.init, *stage.reads):
            assert ref is None or ref == BASE or ref in BY_NAME or "." in ref, (stage.name, ref)


def test_the_tiny_dag_edges():
    dag = DAG(compose([]))
    edges = {key: list(node.upstream) for key, node in dag.nodes.items() if not key.startswith("eval/")}
    assert edges == {
        "data": [], "pretrain": ["data"], "r1_zero": ["data", "pretrain"], "cold_start_sft": ["data", "pretrain"],
        "reasoning_rl": ["data", "cold_start_sft"], "rejection_sampling": ["data", "reasoning_rl"],
        "general_sft": ["data", "pretrain", "rejection_sampling"], "helpfulness_rm": ["data", "general_sft"],
        "harmlessness_rm": ["data", "general_sft"],
        "all_scenario_rl": ["data", "general_sft", "helpfulness_rm", "harmlessness_rm"],
        "distill_data": ["data", "all_scenario_rl"],
        "students/medium/pretrain": ["data"], "students/medium/distill": ["data", "students/medium/pretrain", "distill_data"],
        "students/small/pretrain": ["data"], "students/small/distill": ["data", "students/small/pretrain", "distill_data"],
        "students/medium/r1_zero": ["data", "students/medium/pretrain"],
        "report": ["pretrain", "r1_zero", "cold_start_sft", "reasoning_rl", "general_sft", "all_scenario_rl",
                   "students/medium/pretrain", "students/medium/distill", "students/medium/r1_zero",
                   "students/small/pretrain", "students/small/distill"]}
    # the report's rows, in the recipe's order; each checkpoint on its own template, and R1-Zero's
    # start on R1-Zero's template too (the comparison of R1-Zero with its base is on one template)
    assert list(dag.evaluations) == ["base", "base_on_r1_zero", "r1_zero", "cold_start_sft", "reasoning_rl",
                                     "general_sft", "all_scenario_rl", "base_medium", "base_medium_on_r1_zero",
                                     "student_medium", "rl_only_medium", "base_small", "student_small"]
    # the RL-only student (R1-Zero's recipe) and its start on R1-Zero's template as well
    assert {k for k, n in dag.evaluations.items() if n.template != "chat"} == {
        "base_on_r1_zero", "r1_zero", "base_medium_on_r1_zero", "rl_only_medium"}
    assert dag.init_model(dag.evaluations["base_on_r1_zero"]) == dag.init_model(dag.evaluations["base"])
    assert {k for k, n in dag.evaluations.items() if n.general} == {"general_sft", "all_scenario_rl",
                                                                    "student_medium", "student_small"}
    assert set(dag.rl_runs()) == {"r1_zero", "reasoning_rl", "all_scenario_rl", "rl_only_medium"}
    # the report's lineage: every checkpoint's run, the teacher's and the students' of one stage apart
    assert dag.upstream(dag.nodes["report"]) == {key: f"results/tiny/{key}" for key in (
        "pretrain", "r1_zero", "cold_start_sft", "reasoning_rl", "general_sft", "all_scenario_rl",
        "students/medium/pretrain", "students/medium/distill", "students/medium/r1_zero", "students/small/pretrain",
        "students/small/distill")}


@pytest.mark.parametrize("knob, value, stage, init", [
    ("general_sft.start_from", "reasoning_rl", "general_sft", "reasoning_rl"),
    ("helpfulness_rm.start_from", "base", "helpfulness_rm", "pretrain"),
    ("rejection_sampling.sampler", "cold_start_sft", "rejection_sampling", "cold_start_sft"),
    ("distill_data.sampler", "general_sft", "distill_data", "general_sft"),
])
def test_a_knob_that_chooses_an_edge_moves_it(knob, value, stage, init):
    default, moved = DAG(compose([])), DAG(compose([f"{knob}={value}"]))
    assert moved.nodes[stage].init == init and init in moved.nodes[stage].upstream
    old = default.nodes[stage].init
    if old != init:
        assert old not in moved.nodes[stage].upstream or old in BY_NAME[stage].reads
    assert moved.init_model(moved.nodes[stage]) == f"results/tiny/{init}/model"
    assert moved.view(moved.nodes[stage]) != default.view(default.nodes[stage])  # so the stage reruns


@pytest.mark.parametrize("knob, value", [
    ("general_sft.start_from", "bogus"),
    ("general_sft.start_from", "all_scenario_rl"),  # downstream of general SFT: a cycle
    ("rejection_sampling.sampler", "helpfulness_rm"),  # not a language model
    ("helpfulness_rm.start_from", "pretrain"),  # the base is "base"
])
def test_a_bad_edge_is_a_config_error_naming_the_key_and_the_allowed_values(knob, value):
    with pytest.raises(ValueError, match=rf"config error: {re.escape(knob)}: '{value}' is not one of base, "):
        DAG(compose([f"{knob}={value}"]))


def test_a_real_base_model_has_no_pretrain_stage():
    dag = DAG(compose(["experiment=qwen_math"]))
    assert "pretrain" not in dag.nodes and dag.nodes["cold_start_sft"].upstream == ("data",)
    assert dag.init_model(dag.nodes["cold_start_sft"]) == "Qwen/Qwen2.5-Math-1.5B"
    assert dag.init_model(dag.evaluations[BASE]) == "Qwen/Qwen2.5-Math-1.5B"
    assert dag.init_model(dag.evaluations["base_on_r1_zero"]) == "Qwen/Qwen2.5-Math-1.5B"
    assert dag.init_model(dag.evaluations["base_qwen0.5b"]) == "Qwen/Qwen2.5-0.5B"
    with pytest.raises(ValueError, match="model.init: with model.init=pretrained the DAG has no pretrain stage"):
        dag.node("pretrain")


def test_a_stage_by_hand_reads_what_the_dag_gives_it():
    cfg = compose(["student=medium"])
    dag = DAG(cfg)
    node = find_node(dag, "r1_zero", cfg)
    init, upstream, lineage = resolve_io(dag, node, cfg)
    assert node.key == "students/medium/r1_zero"
    assert init == "results/tiny/students/medium/pretrain/model"
    assert {k: str(v) for k, v in upstream.items()} == {"data": "results/tiny/data",
                                                        "pretrain": "results/tiny/students/medium/pretrain"}
    # an evaluation by label: the label's checkpoint
    cfg = compose(["io.label=general_sft"])
    node = find_node(DAG(cfg), "evaluate", cfg)
    assert resolve_io(DAG(cfg), node, cfg)[0] == "results/tiny/general_sft/model"


def test_stages_a_student_does_not_run_are_config_errors():
    dag = DAG(compose([]))
    with pytest.raises(ValueError, match=r"student: distill trains a student: name one of medium, small"):
        dag.node("distill")
    with pytest.raises(ValueError, match="student 'small' does not run r1_zero .students that do: medium"):
        dag.node("r1_zero", "small")
    with pytest.raises(ValueError, match="student .medium. does not run reasoning_rl"):
        dag.node("reasoning_rl", "medium")
    assert all(n.stage.kind is not Kind.report or n.key == "report" for n in dag.nodes.values())


def test_snakemake_gives_a_stage_what_it_would_read_by_hand(tmp_path):
    """Each rule's command line passes the same starting model and upstream directories that the
    stage, run by hand without them, takes from the stage table."""
    import shlex

    from r1flow.harness.jobs import Jobs

    jobs = Jobs("tiny", root=tmp_path)
    for key, node in jobs.dag.nodes.items():
        if node.stage.kind in (Kind.evaluate, Kind.report):
            continue
        args = [a for a in shlex.split(jobs.command(node))[2:] if not a.startswith("hydra.")]
        given = compose(args)
        by_hand = compose([f"student={node.student}"] if node.student else [])
        assert resolve_io(jobs.dag, node, given)[:2] == resolve_io(DAG(by_hand), node, by_hand)[:2], key


def test_the_teachers_pretraining_outranks_the_one_core_jobs_ready_with_it(tmp_path):
    """Snakemake reserves no cores: of the jobs that are ready together once the data is, the teacher
    pretraining (two cores, the head of the main chain) must be the one the scheduler takes, not
    one-core jobs that would hold a core each while it waits. No edge orders them: an ancient()
    input would, but Snakemake then misses the student's own changes (snakemake/snakemake#4166)."""
    from r1flow.harness.jobs import Jobs

    jobs = Jobs("tiny", root=tmp_path, cores=2)
    after_data = {key for key, node in jobs.dag.nodes.items() if set(node.upstream) == {"data"}}
    assert after_data == {"pretrain", "students/medium/pretrain", "students/small/pretrain"}
    teacher, shards = jobs.stage("pretrain"), jobs.curation("shards")
    # Snakemake sums the priorities of the jobs it starts together: the teacher outranks two
    # one-core jobs of the main chain, such as both curation stages' prompt shards
    assert teacher.threads == 2 and teacher.priority > 2 * shards.priority > 0
    assert jobs.student("pretrain").priority == 0
    # the shards are on the main chain: ahead of the evaluations once the teacher has its cores
    assert shards.priority == jobs.stage("reasoning_rl").priority > jobs.evaluation().priority == 0


def test_another_seeds_jobs_carry_it_and_write_under_its_own_directory(tmp_path):
    from r1flow.harness.jobs import Jobs

    seeded = Jobs("tiny", root=tmp_path, seed=1)
    assert " seed=1 " in seeded.command(seeded.dag.node("pretrain")) and seeded.res == "results/tiny-seed1"
    assert seeded.seeds([0]).input(None) == {"mine": "results/tiny-seed1/report/done.json",
                                             "seed0": "results/tiny/report/done.json"}


def test_every_job_asks_its_class_resources(tmp_path):
    from r1flow.harness.jobs import Jobs

    jobs = Jobs("qwen_math", root=tmp_path)
    # a training job: one node, one task per GPU (Lightning's SLURM environment), srun starting them
    assert jobs.stage("cold_start_sft").resources == {"gres": "gpu:8", "cpus_per_task": 4, "mem_mb": 400000,
                                                      "runtime": 720, "mpi": "srun", "nodes": 1, "tasks_per_node": 8}
    assert jobs.stage("cold_start_sft").params["launcher"] == (
        "${SLURM_JOB_ID:+srun --nodes=1 --ntasks-per-node=8 --kill-on-bad-exit=1} ")
    assert jobs.stage("reasoning_rl").resources["runtime"] == 1440
    assert jobs.evaluation().resources["gres"] == "gpu:1" and "gres" not in jobs.stage("data").resources
    assert "gres" not in jobs.curation("shards").resources and jobs.curation("sample").resources["gres"] == "gpu:1"
    assert "mpi" not in jobs.evaluation().resources, "a sampling job is one process"


def test_multi_node_training_asks_for_nodes_and_gpus_consistent_with_the_trainer(tmp_path):
    from r1flow.config import compose, validate
    from r1flow.config.checks import ConfigError
    from r1flow.harness.jobs import Jobs

    jobs = Jobs("qwen_math", root=tmp_path)
    jobs.cfg.trainer.num_nodes = 4
    asked = jobs.resources(BY_NAME["reasoning_rl"])
    assert (asked["nodes"], asked["tasks_per_node"], asked["gres"]) == (4, 8, "gpu:8")
    with pytest.raises(ConfigError, match=r"resources.train.gpus"):
        validate(compose(["experiment=qwen_math", "trainer.devices=4"]))
    with pytest.raises(ConfigError, match=r"trainer.strategy.*needs GPUs"):
        validate(compose(["trainer.strategy=fsdp"]))
    validate(compose(["trainer.strategy=fsdp2"]))  # FSDP2 runs on CPU (tests/test_distributed.py)
    with pytest.raises(ConfigError, match=r"reasoning_rl.rollout.backend.*FSDP2"):
        validate(compose(["trainer.strategy=fsdp2", "reasoning_rl.rollout.backend=vllm"]))
    with pytest.raises(ConfigError, match=r"batch_size.*split over 3 processes"):
        validate(compose(["trainer.devices=3"]))


def test_validating_a_config_imports_no_training_code():
    """The Snakefile and every stage validate before compute; that costs no torch import and puts no
    training module into any stage's code digest."""
    import subprocess
    import sys

    code = ("import sys; from r1flow.config import compose, validate; from r1flow.dag import DAG; "
            "cfg = compose([]); validate(cfg); DAG(cfg); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'transformers') "
            "or m.startswith(('r1flow.train', 'r1flow.sampling', 'r1flow.world', 'r1flow.runners'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_code_digests_follow_imports_but_not_declarations_or_tracking():
    from r1flow.harness.code import code_files

    def files(module):
        return {str(p.relative_to(ROOT)) for p in code_files(module)}

    data, rl, evaluate = files("stages.data"), files("stages.reasoning_rl"), files("stages.evaluate")
    assert "r1flow/sampling/rewards.py" in rl and "r1flow/sampling/rewards.py" not in data | evaluate
    assert "r1flow/world/tokenizer.py" in data and "r1flow/harness/entry.py" in data
    for digest_files in (data, rl, evaluate):
        assert not any(f.startswith(("r1flow/config/", "tracking/")) or f == "r1flow/dag.py" for f in digest_files)
