"""Shared fixtures: an isolated MLflow store per test session, the smoke world built stage by stage,
and the smoke DAG run once through snakemake in a copy of the project."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from r1flow.harness.outputs import ATTEMPT

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROJECT_FILES = ("Snakefile", "rules", "conf", "r1flow", "stages", "tracking", "profiles", "envs")
SMOKE_DAG = {"data": 1, "pretrain": 1, "r1_zero": 1, "cold_start_sft": 1, "reasoning_rl": 1, "sample_shards": 2,
             "curate": 2, "general_sft": 1, "helpfulness_rm": 1, "harmlessness_rm": 1, "all_scenario_rl": 1,
             "student_pretrain": 2, "distill": 2, "student_r1_zero": 1,
             "evaluate": 13, "report": 1, "all": 1}


# What every stage a test runs by hand is given: the smoke experiment, and one torch thread, as a
# Snakemake job gets by default (rules/common.smk): the 2 pytest workers then use the 2 cores
# without oversubscribing them (with torch's 2 threads each, the GRPO resume test took 321 s in
# the suite, against 51 s on one thread).
STAGE_ARGS = ("experiment=smoke", "trainer.num_threads=1")
_FORKSERVER: list = []  # this pytest worker's fork server, started by its first run_stage


def forkserver_env() -> dict:
    """The environment that sends a stage job through this pytest worker's fork server
    (r1flow/harness/forkserver.py, which a local Snakemake run starts its jobs through): the
    libraries' imports are paid once per worker, not ~8 s of a core for each stage a test runs.
    tests/test_forkserver.py holds a job through the server to the bytes of a job run alone."""
    from r1flow.harness import forkserver

    if not _FORKSERVER:
        _FORKSERVER.append(forkserver.Server(tempfile.mkdtemp(prefix="r1flow-tests-") + "/forkserver.log"))
        atexit.register(_FORKSERVER[0].stop)
    return {forkserver.ENV: _FORKSERVER[0].socket}


def run_stage(stage: str, *overrides: str, cwd: Path = ROOT, env: dict | None = None, check: bool = True):
    """``python -m stages.<stage> experiment=smoke trainer.num_threads=1 …`` in a subprocess (through
    the worker's fork server); returns CompletedProcess."""
    cmd = [sys.executable, "-m", "r1flow.harness.forkserver", "-m", f"stages.{stage}", *STAGE_ARGS, *overrides]
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **forkserver_env(), **(env or {})}, capture_output=True,
                          text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def kill_after_checkpoint(stage: str, out: Path, *overrides: str) -> None:
    """Start ``python -m stages.<stage> experiment=smoke trainer.num_threads=1 …`` (in an interpreter of
    its own) writing to ``out``, SIGKILL it (and the ranks it started) once its first checkpoint is on
    disk, and check that it published nothing: the completion file of an earlier run of ``out`` (if
    any) is as it was, and none is new."""
    cmd = [sys.executable, "-m", f"stages.{stage}", *STAGE_ARGS, *overrides]
    done = out / "done.json"
    before = done.read_bytes() if done.is_file() else None
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpt = out / ATTEMPT / "ckpt" / "last.ckpt"
    deadline = time.time() + 300
    while not ckpt.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.is_file(), "killed mid-run, with a checkpoint"
    assert (done.read_bytes() if done.is_file() else None) == before, "a killed run publishes nothing"


def upstream(**dirs) -> str:
    """The ``io.upstream`` override of a stage run by hand: stage -> its output directory."""
    return "++io.upstream={" + ",".join(f"{k}:{v}" for k, v in dirs.items()) + "}"


def copy_project(dst: Path, src: Path = ROOT, results: bool = False) -> Path:
    """A copy of the project (with ``results`` also its results and Snakemake's records of them)."""
    dst.mkdir(parents=True, exist_ok=True)
    names = PROJECT_FILES + (("results", ".snakemake") if results else ())
    for name in names:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "locks"))
        elif (src / name).exists():
            shutil.copy2(src / name, dst / name)
    return dst


def add_experiment(proj: Path, name: str, body: str, base: str = "smoke") -> str:
    """An experiment ``name`` in ``proj``: experiment ``base`` (its name and results dir too) plus ``body``."""
    path = proj / "conf" / "experiment" / f"{name}.yaml"
    path.write_text(f"# @package _global_\ndefaults:\n  - {base}\n  - _self_\n{body}\n")
    return name


def slurm_available() -> bool:
    """Whether a SLURM cluster answers here (cluster/slurm-local up starts one)."""
    if not shutil.which("sinfo"):
        return False
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0 and any(s in proc.stdout for s in ("idle", "mix", "alloc"))


def snakemake(proj: Path, *args: str, experiment: str = "smoke", env: dict | None = None, check: bool = True,
              timeout: int = 1800) -> str:
    """``snakemake --cores 2 --config experiment=<experiment> <args>`` in ``proj``. Killed after
    ``timeout`` s: snakemake ignores SIGTERM while it waits on cluster jobs."""
    cmd = [SNAKEMAKE, "--cores", "2", "--config", f"experiment={experiment}", *args]
    proc = subprocess.run(cmd, cwd=proj, capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=timeout)
    out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{out[-5000:]}")
    return out


def planned_jobs(proj: Path, *targets: str, experiment: str = "smoke") -> dict[str, int]:
    """Rule -> job count of a dry run ({} when nothing is to be done)."""
    out = snakemake(proj, "-n", *targets, experiment=experiment)
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def xdist_group(item) -> str:
    """The group of tests that one pytest-xdist worker runs together: the tests of the smoke DAG run
    and of the SLURM cluster (they share the cluster's node: on one worker they do not compete for
    it), the tests of the real-shaped DAG run, and otherwise the module (its fixtures built once)."""
    if "smoke_dag" in item.fixturenames or item.module.__name__ == "test_slurm":
        return "smoke_dag"
    return "hf_smoke_dag" if "hf_smoke_dag" in item.fixturenames else item.module.__name__


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """``tests/run`` runs the tests on 2 workers (``-n 2 --dist loadgroup``), each group on one worker.
    The two DAG groups are the longest and mostly wait on their jobs: they go first, so the other
    worker works through the modules meanwhile."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
    items.sort(key=lambda item: {"smoke_dag": 0, "hf_smoke_dag": 1}.get(xdist_group(item), 2))


def pytest_sessionfinish(session, exitstatus):
    """With R1FLOW_NO_SKIPS=1 (CI) a skipped test fails the run: CI installs every engine and starts
    the cluster, so a skip there means a test that did not run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("R1FLOW_NO_SKIPS") == "1" and reporter and reporter.stats.get("skipped"):
        reporter.write_line(f"R1FLOW_NO_SKIPS=1: {len(reporter.stats['skipped'])} test(s) skipped", red=True)
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def fresh_mlflow_tracking_uri():
    """After each test MLflow's fluent API follows ``$MLFLOW_TRACKING_URI`` as it is then (the
    session's store, or a module fixture's): a test that pointed the API at its own store
    (tracking/_common.py: activate_tracking_uri) would otherwise leave that store to the
    ``MlflowClient()`` of the tests after it. (MLflow's ``set_tracking_uri`` also sets the variable,
    which each test's monkeypatch restores before this runs.)"""
    yield
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI"))


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
              upstream(data=f"{res}/data"))
    run_stage("cold_start_sft", *common, f"io.out_dir={res}/cold_start_sft", f"io.init_model={res}/pretrain/model",
              f"hydra.run.dir={res}/cold_start_sft", upstream(data=f"{res}/data", pretrain=f"{res}/pretrain"))
    return res


@dataclass(frozen=True)
class SmokeDAG:
    proj: Path  # the project copy
    uri: str  # its MLflow store, its own: one pipeline run and its stage runs

    @property
    def res(self) -> Path:
        return self.proj / "results" / "smoke"

    def env(self) -> dict:
        return {"MLFLOW_TRACKING_URI": self.uri}


@pytest.fixture(scope="session")
def smoke_dag(tmp_path_factory) -> SmokeDAG:
    """The whole smoke DAG, run once by ``snakemake`` in a copy of the project; tests read its
    results, MLflow runs and registry. Tests that edit its files restore them. Where a SLURM cluster
    answers (CI starts one), every job is a SLURM job (profiles/slurm-local; tests/test_slurm.py)."""
    proj = copy_project(tmp_path_factory.mktemp("proj"))
    dag = SmokeDAG(proj, f"sqlite:///{proj}/mlflow.db")
    snakemake(proj, *(("--profile", "profiles/slurm-local") if slurm_available() else ()), env=dag.env())
    return dag


@pytest.fixture(scope="session")
def hf_world(tmp_path_factory) -> dict[str, str]:
    """The real-shaped world of tests/hf_world.py (checkpoints, tokenizer, data files), built once."""
    from hf_world import build_hf_world

    return build_hf_world(tmp_path_factory.mktemp("hf_world"))


@dataclass(frozen=True)
class HFSmokeDAG(SmokeDAG):
    world: dict  # the paths of the world the DAG ran on

    @property
    def res(self) -> Path:
        return self.proj / "results" / "hf_smoke"

    def env(self) -> dict:
        return {"MLFLOW_TRACKING_URI": self.uri, "R1FLOW_HF_WORLD": str(Path(self.world["base"]).parent)}


@pytest.fixture(scope="session")
def hf_smoke_dag(tmp_path_factory, hf_world) -> HFSmokeDAG:
    """The whole hf_smoke DAG (a Hugging Face checkpoint, the user's files, a checkpoint student),
    run once by ``snakemake`` in a copy of the project."""
    proj = copy_project(tmp_path_factory.mktemp("hf_proj"))
    dag = HFSmokeDAG(proj, f"sqlite:///{proj}/mlflow.db", hf_world)
    snakemake(proj, experiment="hf_smoke", env=dag.env())
    return dag
