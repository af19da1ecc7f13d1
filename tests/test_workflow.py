"""Workflow tests: dry run, lint, the smoke experiment end to end through snakemake, precise
reruns after config and code edits, and the MLflow lineage of one invocation.

The end-to-end test is marked ``slow``; CI runs it in its smoke form. Set
``R1FLOW_E2E_EXPERIMENT=tiny`` to run the embedded default instead (minutes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
EXPERIMENT = os.environ.get("R1FLOW_E2E_EXPERIMENT", "smoke")


def copy_project(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "conf", "r1flow", "stages", "tracking", "profiles", "envs"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst / name)
    return dst


def snakemake(proj: Path, *args: str, env: dict | None = None, check: bool = True) -> str:
    cmd = [SNAKEMAKE, "--cores", "2", "--config", f"experiment={EXPERIMENT}", *args]
    proc = subprocess.run(cmd, cwd=proj, capture_output=True, text=True, env={**os.environ, **(env or {})})
    out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{out[-5000:]}")
    return out


def planned_jobs(proj: Path) -> dict[str, int]:
    """Rule -> job count of a dry run ({} when nothing is to be done)."""
    out = snakemake(proj, "-n")
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("proj"))


def test_dry_run_and_lint(project):
    # the curation stages' shard jobs appear once their checkpoint has written the shards; the
    # smoke world has two students (half, quarter), the quarter one also trained by RL only
    assert planned_jobs(project) == {"data": 1, "pretrain": 1, "cold_start_sft": 1, "r1_zero": 1, "reasoning_rl": 1,
                                     "sample_shards": 2, "curate": 2, "general_sft": 1, "reward_model": 2,
                                     "all_scenario_rl": 1, "student_pretrain": 2, "distill": 2,
                                     "student_cold_start": 1, "student_rl": 1, "evaluate": 11, "report": 1, "all": 1}
    assert "Congratulations, your workflow is in a good condition" in snakemake(project, "--lint")


def test_bad_config_fails_before_any_job(project, tmp_path):
    bad = copy_project(tmp_path / "bad")
    edit(bad / "conf" / "stage" / "evaluate.yaml", "k: 8", "kk: 8")
    out = snakemake(bad, "-n", check=False)
    assert "kk" in out and not (bad / "results").joinpath(EXPERIMENT, "data").exists()


@pytest.mark.slow
def test_end_to_end_reruns_and_lineage(project, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {"MLFLOW_TRACKING_URI": uri}
    snakemake(project, env=env)
    res = project / "results" / EXPERIMENT
    general = {"general_sft", "all_scenario_rl", "student_half", "student_quarter"}
    for label in ("base", "cold_start_sft", "reasoning_rl", "r1_zero", "base_half", "base_quarter", "rl_only_quarter",
                  *general):
        m = json.loads((res / "eval" / label / "metrics.json").read_text())
        assert {"pass@1", "cons@k", "pass@k", "k", "format_rate", "mean_length"} <= set(m)
        assert set(m["splits"]) == {"heldout", "hard"} | ({"general", "safety"} if label in general else set())
    for stage in ("data", "pretrain", "cold_start_sft", "r1_zero", "reasoning_rl", "rejection_sampling",
                  "general_sft", "helpfulness_rm", "harmlessness_rm", "all_scenario_rl", "distill_data",
                  "students/half/pretrain", "students/half/distill", "students/quarter/reasoning_rl", "report"):
        assert (res / stage / "done.json").is_file()
    student = json.loads((res / "students" / "quarter" / "distill" / "model" / "config.json").read_text())
    assert student["hidden_size"] == 8
    table = (res / "report" / "results.md").read_text()
    for label in ("all_scenario_rl", "student_half", "student_quarter", "rl_only_quarter"):
        assert f"| {label} |" in table
    rows = (res / "report" / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 11 and rows[0].startswith("checkpoint,parameters,heldout_pass@1")
    claims = (res / "report" / "claims.md").read_text()
    assert "Distillation beats RL on the same small model (student quarter)" in claims
    for png in ("pass_at_1", "pass_at_k", "rl_curves", "distill_vs_rl"):
        assert (res / "report" / f"{png}.png").stat().st_size > 5000
    shards = sorted((res / "rejection_sampling" / "shards").glob("prompts_*.jsonl"))
    assert len(shards) == 2  # 64 prompts in shards of 32
    report = json.loads((res / "rejection_sampling" / "report.json").read_text())
    assert report["sampled"] == 64 * 2 and report["kept"] + sum(report["dropped"].values()) == report["sampled"]
    assert (res / "reasoning_rl" / "curves.png").stat().st_size > 1000
    assert (res / "logs" / "pretrain.log").is_file() and (res / "benchmarks" / "pretrain.tsv").is_file()
    assert planned_jobs(project) == {}, "a second run has nothing to do"
    snakemake(project, "--report", "report.html", env=env)  # the HTML report embeds the plots and tables
    html = (project / "report.html").read_text(errors="replace")
    assert "distill_vs_rl.png" in html and "claims.md" in html

    # a value in one stage's config reruns that stage and its descendants only
    eval_file = project / "conf" / "stage" / "evaluate.yaml"
    sft_file_cfg = project / "conf" / "stage" / "cold_start_sft.yaml"
    eval_cfg, sft_cfg = eval_file.read_text(), sft_file_cfg.read_text()
    edit(eval_file, "temperature: 0.6", "temperature: 0.7")
    assert planned_jobs(project) == {"evaluate": 11, "report": 1, "all": 1}
    eval_file.write_text(eval_cfg)
    sft_file_cfg.write_text(sft_cfg + "optim: {lr: 1.0e-4}\n")
    # (the RL-only student's cold start uses the same section: it reruns too)
    after_cold_start = {"cold_start_sft": 1, "reasoning_rl": 1, "sample": 4, "curate": 2, "general_sft": 1,
                        "reward_model": 2, "all_scenario_rl": 1, "distill": 2, "student_cold_start": 1,
                        "student_rl": 1, "evaluate": 7, "report": 1, "all": 1}
    assert planned_jobs(project) == after_cold_start
    sft_file_cfg.write_text(sft_cfg)
    assert planned_jobs(project) == {}, "an identical re-resolve reruns nothing"

    # the code of one stage
    stage_file = project / "stages" / "cold_start_sft.py"
    code = stage_file.read_text()
    stage_file.write_text(code + "\n# an edit\n")
    assert planned_jobs(project) == after_cold_start
    stage_file.write_text(code)
    assert planned_jobs(project) == {}

    # a shared building block reruns every stage that imports it
    sft_file = project / "r1flow" / "sft.py"
    sft_code = sft_file.read_text()
    sft_file.write_text(sft_code + "\n# an edit\n")
    assert planned_jobs(project) == {"pretrain": 1, "cold_start_sft": 1, "r1_zero": 1, "reasoning_rl": 1,
                                     "sample": 4, "curate": 2, "general_sft": 1, "reward_model": 2,
                                     "all_scenario_rl": 1, "student_pretrain": 2, "distill": 2,
                                     "student_cold_start": 1, "student_rl": 1, "evaluate": 11, "report": 1, "all": 1}
    sft_file.write_text(sft_code)

    # a student's size reruns that student only
    if EXPERIMENT != "smoke":
        return check_lineage(uri, res)
    experiment_file = project / "conf" / "experiment" / f"{EXPERIMENT}.yaml"
    students_cfg = experiment_file.read_text()
    edit(experiment_file, "half: {hidden_size: 16, intermediate_size: 32}", "half: {hidden_size: 16, intermediate_size: 48}")
    assert planned_jobs(project) == {"student_pretrain": 1, "distill": 1, "evaluate": 2, "report": 1, "all": 1}
    experiment_file.write_text(students_cfg)

    check_lineage(uri, res)


def check_lineage(uri: str, res: Path) -> None:
    from mlflow.tracking import MlflowClient

    from r1flow.harness.files import file_digest
    from tracking.stage import mlflow_dataset_digest as mlflow_digest

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(f"r1flow/{EXPERIMENT}")
    runs = client.search_runs([exp.experiment_id])
    by_stage: dict[str, list] = {}
    for r in runs:
        by_stage.setdefault(r.data.tags.get("r1.stage"), []).append(r)
    assert len(by_stage["pipeline"]) == 1
    pipeline = by_stage["pipeline"][0]
    assert pipeline.info.status == "FINISHED"
    stage_runs = [r for s, rs in by_stage.items() if s != "pipeline" for r in rs]
    # data, pretrain, cold_start_sft, r1_zero, reasoning_rl, rejection sampling (shards, 2 samples,
    # merge), general_sft, 2 reward models, all_scenario_rl, distill_data (4 runs), 2 students x
    # (pretrain, distill), the RL-only student's cold start and RL, 11 evaluations, the report
    assert len(stage_runs) == 13 + 4 + 4 + 2 + 11 + 1
    assert all(r.data.tags["mlflow.parentRunId"] == pipeline.info.run_id for r in stage_runs)
    for r in stage_runs:
        assert r.data.tags["r1.config_digest"] and r.data.tags["r1.code_digest"] and "r1.git_commit" in r.data.tags
    pre = json.loads((res / "pretrain" / "run.json").read_text())
    # the teacher's cold start (the RL-only student has one too); search_runs omits model inputs
    sft = client.get_run(json.loads((res / "cold_start_sft" / "run.json").read_text())["run_id"])
    assert len(by_stage["cold_start_sft"]) == 2 and len(by_stage["pretrain"]) == 3
    assert pre["run_id"] in sft.data.tags["r1.upstream_run_ids"]
    assert pre["model_id"] in [m.model_id for m in sft.inputs.model_inputs]
    digests = {d.dataset.digest for d in sft.inputs.dataset_inputs}
    assert digests, "the cold-start run lists its datasets"
    data_record = json.loads((res / "data" / "run.json").read_text())
    assert data_record["run_id"] in sft.data.tags["r1.upstream_run_ids"]

    # general SFT lists the rejection-sampled dataset (with its digest) and the run that made it
    rs = json.loads((res / "rejection_sampling" / "run.json").read_text())
    gen = client.get_run(by_stage["general_sft"][0].info.run_id)
    assert rs["run_id"] in gen.data.tags["r1.upstream_run_ids"]
    sampled = res / "rejection_sampling" / "reasoning_sft.jsonl"
    names = {d.dataset.name: d.dataset.digest for d in gen.inputs.dataset_inputs}
    assert f"{EXPERIMENT}/rejection_sampled" in names and f"{EXPERIMENT}/general_sft" in names
    assert names[f"{EXPERIMENT}/rejection_sampled"] == mlflow_digest(file_digest(sampled))

    # the final model lists the reward models it was trained against
    final = client.get_run(by_stage["all_scenario_rl"][0].info.run_id)
    inputs = {m.model_id for m in final.inputs.model_inputs}
    for rm in ("helpfulness_rm", "harmlessness_rm"):
        record = json.loads((res / rm / "run.json").read_text())
        assert record["model_id"] in inputs and record["run_id"] in final.data.tags["r1.upstream_run_ids"]

    # the registry: the final model and each student under an alias; from a student, the lineage
    # command walks back through runs, models and datasets to the cold-start data
    registry = {e["alias"]: e for e in json.loads((res / "report" / "registry.json").read_text())}
    assert set(registry) == {"r1", "student-half", "student-quarter"}
    name = f"r1flow-{EXPERIMENT}"
    version = client.get_model_version_by_alias(name, "student-quarter")
    distill = json.loads((res / "students" / "quarter" / "distill" / "run.json").read_text())
    assert version.run_id == distill["run_id"]
    assert client.get_model_version_by_alias(name, "r1").run_id == final.info.run_id
    proc = subprocess.run([sys.executable, "-m", "tracking.lineage", f"models:/{name}@student-quarter"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr
    chain = proc.stdout
    cold_start = res / "data" / "cold_start.jsonl"
    for stage in ("distill", "distill_data", "all_scenario_rl", "general_sft", "rejection_sampling", "reasoning_rl",
                  "cold_start_sft"):
        assert f"{stage}  run=" in chain
    assert f"{EXPERIMENT}/cold_start {file_digest(cold_start)}" in chain
