"""Config tests: every experiment composes; the schema documents every knob once and rejects bad
keys, types and choices before compute, naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import run_stage
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from r1flow.config import CONF_DIR, compose, config_view, validate, with_student
from r1flow.config.root import RootConfig
from r1flow.dag import DAG

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment):
    cfg = compose([f"experiment={experiment}"])
    validate(cfg)
    dag = DAG(cfg)
    assert all(dag.view(node)["name"] == cfg.name for node in dag.nodes.values())


def test_tiny_is_default_and_real_experiment_uses_gpu_and_hub_model():
    assert compose([]).name == "tiny"
    real = compose(["experiment=qwen_math"])
    assert real.model.init == "pretrained" and "Qwen2.5-Math-1.5B" in real.model.name_or_path
    assert real.trainer.accelerator == "gpu" and real.trainer.precision == "bf16-mixed"
    assert real.resources.train.gpus == 8


def schema_fields(cls, prefix=""):
    """(dotted key, field) of every leaf knob of a schema class, nested sections included."""
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            yield from schema_fields(type(default), f"{prefix}{f.name}.")
        yield f"{prefix}{f.name}", f


def test_every_knob_is_documented_where_it_is_defined():
    undocumented = [key for key, f in schema_fields(RootConfig) if not f.metadata.get("help")]
    assert not undocumented, f"knobs without help: {undocumented}"


def test_the_config_reference_is_generated_from_the_schema():
    from r1flow.config.reference import reference

    assert (ROOT / "docs" / "config.md").read_text() == reference(), "run: python -m r1flow.config.reference"


@pytest.mark.parametrize("override, exc", [
    ("cold_start_sft.optim.lrr=1e-4", (ConfigCompositionException, ConfigKeyError)),
    ("cold_start_sft.batch_size=sixteen", (ConfigCompositionException, ValidationError)),
    ("model.hidden_size=1.5", (ConfigCompositionException, ValidationError)),
    ("reasoning_rl.loss_type=dapoo", (ConfigCompositionException, ValidationError)),
    ("model.init=magic", (ConfigCompositionException, ValidationError)),
])
def test_schema_rejects_unknown_keys_wrong_types_and_choices(override, exc):
    with pytest.raises(exc) as info:
        compose([override])
    key = override.split("=")[0]
    text = str(info.value) + str(info.value.__cause__ or "")
    assert key.split(".")[-1] in text
    if "loss_type" in key:
        assert "grpo, bnpo, dr_grpo, dapo" in text  # the allowed values


@pytest.mark.parametrize("override, key", [
    ("evaluate.k=0", "evaluate.k"),
    ("evaluate.splits=[test]", "evaluate.splits"),
    ("data.heldout_permille=0", "data.heldout_permille"),
    ("data.check_frac=1.5", "data.check_frac"),
    ("data.hurried_frac=-0.1", "data.hurried_frac"),
    ("data.pretrain_fact_max_b=100", "data.pretrain_fact_max_b"),
    ("evaluate.general_splits=[heldout2]", "evaluate.general_splits"),
    ("+students.odd={hidden_size: 90}", "students.odd"),
    ("+students.typo={hidden_sise: 64}", "students.typo"),
    ("+students.slow={hidden_size: 64, pretrain: {max_step: 9}}", "students.slow.pretrain"),
    ("rl_only_students=[nobody]", "rl_only_students"),
    ("distill.general_frac=1.0", "distill.general_frac"),
    ("distill_data.n=0", "distill_data"),
    ("reasoning_rl.generation_batch_size=100", "reasoning_rl.generation_batch_size"),
    (["reasoning_rl.async_rollout=true", "reasoning_rl.dynamic_sampling=true"], "reasoning_rl.async_rollout"),
    (["r1_zero.async_rollout=true", "r1_zero.rollout.backend=vllm"], "r1_zero.async_rollout"),
    (["all_scenario_rl.async_rollout=true", "trainer.devices=2", "trainer.strategy=ddp"], "all_scenario_rl.async_rollout"),
])
def test_semantic_validation_names_the_key(override, key):
    with pytest.raises(ValueError, match=key):
        validate(compose(override if isinstance(override, list) else [override]))


@pytest.mark.parametrize("override, says", [
    ("+cold_start_sft.lrr=1e-4", "cold_start_sft.lrr: not a key of SFTConfig; its keys: batch_size,"),
    ("+cold_start_sft.optim.lrr=1e-4", "cold_start_sft.optim.lrr: not a key of OptimConfig (did you mean lr?)"),
    ("+trainer.devicez=2", "trainer.devicez: not a key of TrainerConfig (did you mean devices?)"),
])
def test_a_key_added_with_plus_must_be_in_the_schema(override, says):
    """Hydra's ``+`` adds a key past a structured config's schema; validation rejects it."""
    cfg = compose([override])  # composes: Hydra adds the key
    with pytest.raises(ValueError) as info:
        validate(cfg)
    assert says in str(info.value)


def test_free_form_sections_take_new_keys_with_plus():
    cfg = compose(["+reasoning_rl.rewards.tag_count=0.5", "+students.big={hidden_size: 128}",
                   "+report.aliases.reasoning_rl=reasoner"])
    validate(cfg)
    assert cfg.reasoning_rl.rewards.tag_count == 0.5 and cfg.students.big.hidden_size == 128


def test_a_student_is_the_teacher_model_with_its_overrides():
    cfg = compose([])
    small = with_student(cfg, "small")
    assert (small.model.hidden_size, small.model.intermediate_size) == (64, 256)
    assert small.model.num_layers == cfg.model.num_layers and small.student == "small"
    assert with_student(cfg) is cfg  # no student: unchanged
    with pytest.raises(ValueError, match="'giant' is not one of students"):
        with_student(cfg, "giant")
    # a student's 'pretrain' key sets its pretraining (fewer steps than its teacher's), not its model
    assert cfg.pretrain.max_steps > small.pretrain.max_steps == cfg.students.small.pretrain.max_steps
    assert small.pretrain.batch_size == cfg.pretrain.batch_size and "pretrain" not in small.model
    assert config_view(small, ("pretrain",))["pretrain"]["max_steps"] == small.pretrain.max_steps


def test_another_seed_writes_beside_seed_0():
    assert compose([]).results_dir == "results/tiny"
    cfg = compose(["seed=1"])
    assert cfg.results_dir == "results/tiny-seed1" and cfg.io.data_dir == "results/tiny-seed1/data"
    assert cfg.data.seed == compose([]).data.seed  # the same problems under every seed


def test_views_separate_stages_and_students():
    a, b = DAG(compose([])), DAG(compose(["evaluate.k=16"]))
    assert a.view(a.evaluations["base"]) != b.view(b.evaluations["base"])
    for key in ("data", "pretrain", "cold_start_sft", "students/small/pretrain"):
        assert a.view(a.nodes[key]) == b.view(b.nodes[key])
    # a student's stages have views of their own: a student edit reruns that student only
    assert a.view(a.nodes["students/small/pretrain"]) != a.view(a.nodes["pretrain"])
    assert a.view(a.nodes["students/small/pretrain"]) != a.view(a.nodes["students/medium/pretrain"])
    assert config_view(compose([]), ("model.init",)) == {"name": "tiny", "seed": 0, "model.init": "scratch"}


@pytest.mark.parametrize("stage", ["evaluate", "reasoning_rl"])  # every entry is a stage_main (test_dag)
def test_stage_cli_help_and_cfg_job(stage):
    out = run_stage(stage, "--cfg", "job", check=False)
    assert out.returncode == 0, out.stderr
    assert "name: smoke" in out.stdout
    out = run_stage(stage, "--help", check=False)
    assert out.returncode == 0 and "Powered by Hydra" in out.stdout


def test_bad_key_on_the_command_line_fails_before_compute(tmp_path):
    out = run_stage("pretrain", "pretrain.max_stepz=3", f"results_dir={tmp_path}", check=False)
    assert out.returncode != 0
    assert "max_stepz" in out.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written"


@pytest.mark.parametrize("sweep, target", [("optuna_rl", "OptunaSweeper"), ("slurm", "SlurmLauncher")])
def test_sweep_plugin_configs_compose(sweep, target):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hcompose(config_name="config", overrides=[f"+sweep={sweep}"], return_hydra_config=True)
    node = cfg.hydra.sweeper if sweep == "optuna_rl" else cfg.hydra.launcher
    assert target in node._target_
    if sweep == "optuna_rl":
        assert "reasoning_rl.beta" in cfg.hydra.sweeper.params
