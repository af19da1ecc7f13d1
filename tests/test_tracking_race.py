"""Concurrent jobs logging into one MLflow store, as the trials of a sweep and parallel Snakemake
jobs do (real processes against a real, temporary sqlite store)."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tracking import check_tracking_server, read_run_record, stage_run
from tracking.registry import register_checkpoint


def _log_the_same_datasets(store_uri: str, work: str, worker: int, barrier: Any, names: list[str]) -> None:
    """One job of the race below: its own stage run, logging each dataset when the other job does."""
    os.environ["MLFLOW_TRACKING_URI"] = store_uri
    os.chdir(work)
    data = Path(work) / "shared.jsonl"
    with stage_run(stage=f"trial{worker}", experiment="race", config={"seed": worker}, config_digest=f"cfg{worker}",
                   code_digest="code", out_dir=f"{work}/trial{worker}", system_metrics=False) as run:
        for name in names:
            barrier.wait(timeout=60)
            run.log_dataset(data, name=name, digest="sha256:" + "d" * 64, num_rows=1)
        model_dir = Path(work) / f"model{worker}"
        model_dir.mkdir()
        model_id = run.log_hf_model(model_dir, name=f"trial{worker}")
    for name in names:  # a registered model each, created by whichever report gets there first
        barrier.wait(timeout=60)
        register_checkpoint(model_id, name.replace("/", "-"), f"trial{worker}", f"trial{worker}")


def test_two_runs_logging_the_same_new_dataset_or_registering_the_same_model_at_once_both_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trials of a sweep log the same held-out file at the same moment. MLflow's SQL store
    creates a dataset after looking it up, without a lock, so one of two simultaneous inserts
    fails its unique constraint (measured with two processes at a barrier: about half of the
    rounds; CI lost it once in a SLURM sweep). Twenty rounds: both jobs end, and every dataset is
    an input of both runs, once. Then two reports (two seeds' runs) register their final models
    under the same new name at once, twenty times: each name gets both versions."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    check_tracking_server()  # creates and migrates the database before the jobs race
    (tmp_path / "shared.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
    names = [f"race/held_out_{i}" for i in range(20)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    jobs = [ctx.Process(target=_log_the_same_datasets, args=(uri, str(tmp_path), worker,
                                                             barrier, names)) for worker in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=300)
    assert [job.exitcode for job in jobs] == [0, 0]
    records = [read_run_record(tmp_path / f"trial{worker}") for worker in range(2)]
    client = MlflowClient(uri)  # not the process's default: an earlier test may have set one
    for record in records:
        inputs = client.get_run(record["run_id"]).inputs.dataset_inputs
        assert sorted(i.dataset.name for i in inputs) == sorted(names)
        assert [d["name"] for d in record["datasets"]] == names
    for name in names:
        versions = client.search_model_versions(f"name = '{name.replace('/', '-')}'")
        assert sorted(v.tags["r1.label"] for v in versions) == ["trial0", "trial1"]
