"""The smoke DAG's MLflow record: one pipeline run with a child per stage, the upstream runs,
models and datasets (with digests) of each stage, the registry's aliases and the lineage walk back
from a student; and an edge chosen by a knob moving the recorded lineage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT, copy_project, planned_jobs, snakemake
from mlflow.tracking import MlflowClient

from r1flow.harness.files import file_digest
from tracking.datasets import mlflow_dataset_digest


def record(res, stage: str) -> dict:
    return json.loads((res / stage / "run.json").read_text())


def test_one_pipeline_run_with_a_child_run_per_stage_job(smoke_dag):
    client = MlflowClient(tracking_uri=smoke_dag.uri)
    report = client.get_run(record(smoke_dag.res, "report")["run_id"])
    pipeline = client.get_run(report.data.tags["mlflow.parentRunId"])
    assert pipeline.data.tags["r1.stage"] == "pipeline" and pipeline.info.status == "FINISHED"
    children = client.search_runs([pipeline.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{pipeline.info.run_id}'")
    # data, pretrain, cold_start_sft, r1_zero, reasoning_rl, rejection sampling (shards, 2 samples,
    # merge), general_sft, 2 reward models, all_scenario_rl, distill_data (4 runs), 2 students x
    # (pretrain, distill), the RL-only student's cold start and RL, 12 evaluations, the report
    assert len(children) == 13 + 4 + 4 + 2 + 12 + 1
    for r in children:
        assert r.data.tags["r1.config_digest"] and r.data.tags["r1.code_digest"] and "r1.git_commit" in r.data.tags
        assert r.info.status == "FINISHED"


def test_a_stage_run_lists_its_upstream_runs_models_and_datasets(smoke_dag):
    client, res = MlflowClient(tracking_uri=smoke_dag.uri), smoke_dag.res
    sft = client.get_run(record(res, "cold_start_sft")["run_id"])  # search_runs omits model inputs
    assert record(res, "pretrain")["run_id"] in sft.data.tags["r1.upstream_run_ids"]
    assert record(res, "data")["run_id"] in sft.data.tags["r1.upstream_run_ids"]
    assert record(res, "pretrain")["model_id"] in [m.model_id for m in sft.inputs.model_inputs]
    names = {d.dataset.name: d.dataset.digest for d in sft.inputs.dataset_inputs}
    assert names["smoke/cold_start"] == mlflow_dataset_digest(file_digest(res / "data" / "cold_start.jsonl"))
    # general SFT lists the rejection-sampled dataset (with its digest) and the run that made it
    gen = client.get_run(record(res, "general_sft")["run_id"])
    assert record(res, "rejection_sampling")["run_id"] in gen.data.tags["r1.upstream_run_ids"]
    names = {d.dataset.name: d.dataset.digest for d in gen.inputs.dataset_inputs}
    sampled = res / "rejection_sampling" / "reasoning_sft.jsonl"
    assert names["smoke/rejection_sampled"] == mlflow_dataset_digest(file_digest(sampled))
    assert "smoke/general_sft" in names
    # the final model lists the reward models it was trained against
    final = client.get_run(record(res, "all_scenario_rl")["run_id"])
    for rm in ("helpfulness_rm", "harmlessness_rm"):
        assert record(res, rm)["model_id"] in {m.model_id for m in final.inputs.model_inputs}
        assert record(res, rm)["run_id"] in final.data.tags["r1.upstream_run_ids"]


def test_registry_aliases_and_the_lineage_walk_from_a_student(smoke_dag):
    client, res = MlflowClient(tracking_uri=smoke_dag.uri), smoke_dag.res
    registry = {e["alias"]: e for e in json.loads((res / "report" / "registry.json").read_text())}
    assert set(registry) == {"r1", "student-half", "student-quarter"}
    version = client.get_model_version_by_alias("r1flow-smoke", "student-quarter")
    assert version.run_id == record(res, "students/quarter/distill")["run_id"]
    assert client.get_model_version_by_alias("r1flow-smoke", "r1").run_id == record(res, "all_scenario_rl")["run_id"]
    proc = subprocess.run([sys.executable, "-m", "tracking.lineage", "models:/r1flow-smoke@student-quarter"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **smoke_dag.env()})
    assert proc.returncode == 0, proc.stderr
    for stage in ("distill", "distill_data", "all_scenario_rl", "general_sft", "rejection_sampling", "reasoning_rl",
                  "cold_start_sft"):
        assert f"{stage}  run=" in proc.stdout
    assert f"smoke/cold_start {file_digest(res / 'data' / 'cold_start.jsonl')}" in proc.stdout


def test_general_sft_start_from_moves_the_edge_and_the_recorded_lineage(smoke_dag, tmp_path):
    proj = copy_project(tmp_path / "moved", smoke_dag.proj, results=True)
    res = proj / "results" / "smoke"
    experiment = proj / "conf" / "sizes" / "smoke.yaml"  # the smoke experiments' stage settings
    text = experiment.read_text()
    assert "general_sft: {max_steps: 6," in text
    experiment.write_text(text.replace("general_sft: {max_steps: 6,", "general_sft: {start_from: reasoning_rl, max_steps: 6,"))
    target = "results/smoke/general_sft/done.json"
    assert planned_jobs(proj, target) == {"general_sft": 1}
    out = snakemake(proj, "-p", target, env=smoke_dag.env())
    assert "io.init_model=results/smoke/reasoning_rl/model" in out
    rec = record(res, "general_sft")
    assert record(res, "reasoning_rl")["run_id"] in rec["upstream_run_ids"]
    assert record(res, "pretrain")["run_id"] not in rec["upstream_run_ids"]
    run = MlflowClient(tracking_uri=smoke_dag.uri).get_run(rec["run_id"])
    assert record(res, "reasoning_rl")["model_id"] in {m.model_id for m in run.inputs.model_inputs}
    assert record(res, "pretrain")["model_id"] not in {m.model_id for m in run.inputs.model_inputs}
