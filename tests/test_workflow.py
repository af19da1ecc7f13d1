"""The workflow as Snakemake sees it: the job plan of the smoke DAG, lint, bad configs failing
before any job, and the smoke DAG's run: every stage's outputs and the HTML report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import SMOKE_DAG, SNAKEMAKE, add_experiment, copy_project, planned_jobs, snakemake


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("fresh"))


def test_job_plan_of_the_smoke_dag_and_lint(fresh):
    # the curation stages' shard jobs appear once their checkpoint has written the shards; the smoke
    # world has two students (half, quarter), the quarter one also trained by RL only
    assert planned_jobs(fresh) == SMOKE_DAG
    assert "Congratulations, your workflow is in a good condition" in snakemake(fresh, "--lint")


def test_the_real_scale_experiment_plans_every_stage_down_to_its_students(fresh):
    """qwen_math: a checkpoint base (no pretraining), two checkpoint students (no pretraining either),
    one of them also trained by RL only; every stage, evaluation and the report are planned."""
    assert planned_jobs(fresh, experiment="qwen_math") == {
        "data": 1, "r1_zero": 1, "cold_start_sft": 1, "reasoning_rl": 1, "sample_shards": 2, "curate": 2,
        "general_sft": 1, "helpfulness_rm": 1, "harmlessness_rm": 1, "all_scenario_rl": 1, "distill": 2,
        "student_r1_zero": 1, "evaluate": 13, "report": 1, "all": 1}


@pytest.mark.parametrize("override, says", [
    ("evaluate: {kk: 2}", "kk"),  # a misspelt key
    ("general_sft: {start_from: all_scenario_rl}",  # a stage downstream of general SFT: a cycle
     "general_sft.start_from: 'all_scenario_rl' is not one of base, r1_zero, cold_start_sft, reasoning_rl"),
    ("reasoning_rl: {rewards: {acuracy: 1.0}}", "reasoning_rl.rewards: unknown reward 'acuracy'"),
    ("reasoning_rl: {rewards: {helpfulness_rm: 1.0}}", "reasoning_rl does not read"),  # no reward model upstream
    ("students: {big: {hidden_size: 256}}\nmodel: {init: pretrained, name_or_path: /models/x}",  # nothing to pretrain on
     ": the teacher is a checkpoint (model.init=pretrained)"),
    ("data: {source: files, files: {path: /data/p.jsonl}}", "data.source: files need a pretrained base model"),
])
def test_bad_config_fails_before_any_job(tmp_path, override, says):
    bad = copy_project(tmp_path / "bad")
    out = snakemake(bad, "-n", experiment=add_experiment(bad, "bad", override), check=False)
    assert says in out, out[-3000:]
    assert not (bad / "results").exists()


def test_snakemake_config_takes_only_its_own_keys(tmp_path):
    """A misspelt ``--config`` key would otherwise be ignored and start the default experiment."""
    proj = copy_project(tmp_path / "p")
    out = subprocess.run([SNAKEMAKE, "-n", "--cores", "1", "--config", "experimnt=smoke"], cwd=proj,
                         capture_output=True, text=True)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "--config: unknown key(s) experimnt. The keys are:" in text and "  experiment: " in text, text[-2000:]
    assert not (proj / "results").exists(), "nothing written, not even the config views"


def test_an_unreachable_tracking_server_stops_snakemake_before_any_job(tmp_path):
    proj = copy_project(tmp_path / "p")
    out = snakemake(proj, env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, check=False)
    assert "MLflow tracking server at http://127.0.0.1:9 is unreachable" in out, out[-3000:]
    assert "no job was started" in out
    assert not list((proj / "results" / "smoke").glob("*/done.json"))


def test_every_stage_of_the_smoke_dag_leaves_its_outputs(smoke_dag):
    res = smoke_dag.res
    general = {"general_sft", "all_scenario_rl", "student_half", "student_quarter"}
    on_r1_zero = {"base_on_r1_zero", "r1_zero", "base_quarter_on_r1_zero", "rl_only_quarter"}  # R1-Zero's template
    for label in ("base", "cold_start_sft", "reasoning_rl", "base_half", "base_quarter", *on_r1_zero, *general):
        m = json.loads((res / "eval" / label / "metrics.json").read_text())
        assert {"pass@1", "cons@k", "pass@k", "k", "format_rate", "mean_length"} <= set(m)
        assert set(m["splits"]) == {"heldout", "hard"} | ({"general", "safety"} if label in general else set())
        assert m["spec"]["template"] == ("r1_zero" if label in on_r1_zero else "chat")
    for stage in ("data", "pretrain", "cold_start_sft", "r1_zero", "reasoning_rl", "rejection_sampling",
                  "general_sft", "helpfulness_rm", "harmlessness_rm", "all_scenario_rl", "distill_data",
                  "students/half/pretrain", "students/half/distill", "students/quarter/r1_zero", "report"):
        assert (res / stage / "done.json").is_file(), stage
    student = json.loads((res / "students" / "quarter" / "distill" / "model" / "config.json").read_text())
    assert student["hidden_size"] == 8
    shards = sorted((res / "rejection_sampling" / "shards").glob("prompts_*.jsonl"))
    assert len(shards) == 2  # 64 prompts in shards of 32
    report = json.loads((res / "rejection_sampling" / "report.json").read_text())
    assert report["sampled"] == 64 * 2 and report["kept"] + sum(report["dropped"].values()) == report["sampled"]
    assert (res / "reasoning_rl" / "curves.png").stat().st_size > 1000
    assert (res / "logs" / "pretrain.log").is_file() and (res / "benchmarks" / "pretrain.tsv").is_file()
    assert planned_jobs(smoke_dag.proj) == {}, "a second run has nothing to do"


# runs a stage as its job does, and prints which heavy modules the process had imported when it ended
PROBE = ("import atexit, runpy, sys; atexit.register(lambda: print('imported:', sorted({m.split('.')[0] for m in "
         "sys.modules} & {'torch', 'lightning', 'torchmetrics'}))); sys.argv = sys.argv[1:]; "
         "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")


@pytest.mark.parametrize("stage, args", [
    ("data", []),
    ("rejection_sampling", ["io.part=shards"]),
    ("rejection_sampling", ["io.part=merge"]),
    ("report", []),
])
def test_light_jobs_import_neither_torch_nor_lightning(smoke_dag, tmp_path, stage, args):
    """The data, report, shards and merge jobs compute nothing with torch: they import neither
    torch nor Lightning (4 to 6 s of each job's start-up: bench/job_startup.py; entry.seed)."""
    out = subprocess.run([sys.executable, "-c", PROBE, f"stages.{stage}", "experiment=smoke", f"io.out_dir={tmp_path}",
                          f"hydra.run.dir={tmp_path}", *args], cwd=smoke_dag.proj, capture_output=True, text=True,
                         env={**os.environ, **smoke_dag.env()})
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "done.json").is_file()
    assert "imported: []" in out.stdout, out.stdout[-2000:]


def test_snakemake_report_embeds_the_plots_and_tables(smoke_dag):
    snakemake(smoke_dag.proj, "--report", "report.html", env=smoke_dag.env())
    html = (smoke_dag.proj / "report.html").read_text(errors="replace")
    for name in ("distill_vs_rl.png", "claims.md", "results.md", "curves.png", "lengths.png", "pass_at_k.png"):
        assert name in html, name
