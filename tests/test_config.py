"""Config tests: every experiment composes, the schema rejects bad keys and types before compute."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from r1flow.config import CONF_DIR, STAGE_SECTIONS, compose, stage_view, validate, with_student

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
STAGES = sorted(p.stem for p in (ROOT / "stages").glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment):
    cfg = compose([f"experiment={experiment}"])
    validate(cfg)
    assert cfg.name
    for stage in STAGE_SECTIONS:
        assert stage_view(cfg, stage)["name"] == cfg.name


def test_tiny_is_default_and_real_experiment_uses_gpu_and_hub_model():
    assert compose([]).name == "tiny"
    real = compose(["experiment=qwen_math"])
    assert real.model.init == "pretrained" and "Qwen2.5-Math-1.5B" in real.model.name_or_path
    assert real.trainer.accelerator == "gpu" and real.trainer.precision == "bf16-mixed"


@pytest.mark.parametrize("override, exc", [
    ("cold_start_sft.optim.lrr=1e-4", (ConfigCompositionException, ConfigKeyError)),
    ("cold_start_sft.batch_size=sixteen", (ConfigCompositionException, ValidationError)),
    ("model.hidden_size=1.5", (ConfigCompositionException, ValidationError)),
])
def test_schema_rejects_unknown_keys_and_wrong_types(override, exc):
    with pytest.raises(exc) as info:
        compose([override])
    key = override.split("=")[0]
    text = str(info.value) + str(info.value.__cause__ or "")
    assert key.split(".")[-1] in text


@pytest.mark.parametrize("override, key", [
    ("model.init=magic", "model.init"),
    ("evaluate.k=0", "evaluate.k"),
    ("evaluate.splits=[test]", "evaluate.splits"),
    ("data.heldout_permille=0", "data.heldout_permille"),
    ("evaluate.general_splits=[heldout2]", "evaluate.general_splits"),
    ("+students.odd={hidden_size: 90}", "students.odd"),
    ("+students.typo={hidden_sise: 64}", "students.typo"),
    ("rl_only_students=[nobody]", "rl_only_students"),
    ("distill.general_frac=1.0", "distill.general_frac"),
    ("distill_data.n=0", "distill_data"),
])
def test_semantic_validation_names_the_key(override, key):
    with pytest.raises(ValueError, match=key):
        validate(compose([override]))


def test_a_student_is_the_teacher_model_with_its_overrides():
    cfg = compose([])
    small = with_student(cfg, "small")
    assert (small.model.hidden_size, small.model.intermediate_size) == (64, 256)
    assert small.model.num_layers == cfg.model.num_layers and small.student == "small"
    assert with_student(cfg) is cfg  # no student: unchanged
    # the student's stages have views of their own: a student edit reruns that student only
    assert stage_view(small, "pretrain") != stage_view(cfg, "pretrain")
    assert stage_view(with_student(cfg, "medium"), "pretrain") != stage_view(small, "pretrain")
    with pytest.raises(ValueError, match="'giant' is not one of students"):
        with_student(cfg, "giant")


def test_stage_views_separate_stages():
    a, b = compose([]), compose(["evaluate.k=16"])
    assert stage_view(a, "evaluate") != stage_view(b, "evaluate")
    for stage in ("data", "pretrain", "cold_start_sft"):
        assert stage_view(a, stage) == stage_view(b, stage)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_cli_help_and_cfg_job(stage):
    out = subprocess.run([sys.executable, "-m", f"stages.{stage}", "--cfg", "job", "experiment=smoke"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "name: smoke" in out.stdout
    out = subprocess.run([sys.executable, "-m", f"stages.{stage}", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "Powered by Hydra" in out.stdout


def test_bad_key_on_the_command_line_fails_before_compute(tmp_path):
    out = subprocess.run([sys.executable, "-m", "stages.pretrain", "experiment=smoke", "pretrain.max_stepz=3",
                          f"results_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
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
