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
    # rejection sampling's shard jobs appear once its checkpoint has written the shards
    assert planned_jobs(project) == {"data": 1, "pretrain": 1, "cold_start_sft": 1, "r1_zero": 1, "reasoning_rl": 1,
                                     "rs_shards": 1, "rejection_sampling": 1, "general_sft": 1, "reward_model": 2,
                                     "all_scenario_rl": 1, "evaluate": 6, "all": 1}
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
    for label in ("base", "cold_start_sft", "reasoning_rl", "r1_zero", "general_sft", "all_scenario_rl"):
        m = json.loads((res / "eval" / label / "metrics.json").read_text())
        assert {"pass@1", "cons@k", "pass@k", "k", "format_rate", "mean_length"} <= set(m)
        assert set(m["splits"]) == {"heldout", "hard", "general", "safety"}
    for stage in ("data", "pretrain", "cold_start_sft", "r1_zero", "reasoning_rl", "rejection_sampling",
                  "general_sft", "helpfulness_rm", "harmlessness_rm", "all_scenario_rl"):
        assert (res / stage / "done.json").is_file()
    shards = sorted((res / "rejection_sampling" / "shards").glob("prompts_*.jsonl"))
    assert len(shards) == 2  # 64 prompts in shards of 32
    report = json.loads((res / "rejection_sampling" / "report.json").read_text())
    assert report["sampled"] == 64 * 2 and report["kept"] + sum(report["dropped"].values()) == report["sampled"]
    assert (res / "reasoning_rl" / "curves.png").stat().st_size > 1000
    assert (res / "logs" / "pretrain.log").is_file() and (res / "benchmarks" / "pretrain.tsv").is_file()
    assert planned_jobs(project) == {}, "a second run has nothing to do"

    # a value in one stage's config reruns that stage and its descendants only
    eval_file = project / "conf" / "stage" / "evaluate.yaml"
    sft_file_cfg = project / "conf" / "stage" / "cold_start_sft.yaml"
    eval_cfg, sft_cfg = eval_file.read_text(), sft_file_cfg.read_text()
    edit(eval_file, "temperature: 0.6", "temperature: 0.7")
    assert planned_jobs(project) == {"evaluate": 6, "all": 1}
    eval_file.write_text(eval_cfg)
    sft_file_cfg.write_text(sft_cfg + "optim: {lr: 1.0e-4}\n")
    after_cold_start = {"cold_start_sft": 1, "reasoning_rl": 1, "rs_sample": 2, "rejection_sampling": 1,
                        "general_sft": 1, "reward_model": 2, "all_scenario_rl": 1, "evaluate": 4, "all": 1}
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
                                     "rs_sample": 2, "rejection_sampling": 1, "general_sft": 1, "reward_model": 2,
                                     "all_scenario_rl": 1, "evaluate": 6, "all": 1}
    sft_file.write_text(sft_code)

    check_lineage(uri, res)


def check_lineage(uri: str, res: Path) -> None:
    from mlflow.tracking import MlflowClient

    from r1flow.datafiles import file_digest
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
    # merge), general_sft, 2 reward models, all_scenario_rl, 6 evaluations
    assert len(stage_runs) == 19
    assert all(r.data.tags["mlflow.parentRunId"] == pipeline.info.run_id for r in stage_runs)
    for r in stage_runs:
        assert r.data.tags["r1.config_digest"] and r.data.tags["r1.code_digest"] and "r1.git_commit" in r.data.tags
    pre = json.loads((res / "pretrain" / "run.json").read_text())
    sft = client.get_run(by_stage["cold_start_sft"][0].info.run_id)  # search_runs omits model inputs
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
