"""Shared fixtures: an isolated MLflow store per test session, and the smoke world built once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_stage(stage: str, *overrides: str, cwd: Path = ROOT, env: dict | None = None, check: bool = True):
    """``python -m stages.<stage> experiment=smoke …`` in a subprocess; returns CompletedProcess."""
    cmd = [sys.executable, "-m", f"stages.{stage}", "experiment=smoke", *overrides]
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    return uri


@pytest.fixture(scope="session")
def smoke_world(tmp_path_factory, mlflow_uri) -> Path:
    """results/smoke/{data,pretrain,cold_start_sft} built once by the stages themselves."""
    res = tmp_path_factory.mktemp("smoke") / "results"
    common = [f"results_dir={res}", f"io.data_dir={res}/data"]
    run_stage("data", *common, f"io.out_dir={res}/data", f"hydra.run.dir={res}/data")
    run_stage("pretrain", *common, f"io.out_dir={res}/pretrain", f"hydra.run.dir={res}/pretrain",
              f"io.upstream=[{res}/data]")
    run_stage("cold_start_sft", *common, f"io.out_dir={res}/cold_start_sft", f"io.init_model={res}/pretrain/model",
              f"hydra.run.dir={res}/cold_start_sft", f"io.upstream=[{res}/data,{res}/pretrain]")
    return res
