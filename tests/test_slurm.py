"""The cluster path on a real SLURM cluster (cluster/slurm-local: slurmctld, slurmd, slurmdbd on this
machine): the smoke DAG through Snakemake's SLURM executor plugin (the ``smoke_dag`` fixture runs
it there when a cluster answers), a training stage as a 2-task job under Lightning's SLURM
environment, a failing job, and a Hydra sweep whose trials are SLURM jobs under one MLflow run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SMOKE_DAG, add_experiment, copy_project, slurm_available, snakemake, upstream
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.skipif(not slurm_available(), reason="no SLURM cluster answers: "
                                "cluster/slurm-local install && cluster/slurm-local up")


def sacct(job_ids: list[str], steps: bool = False) -> dict[str, dict]:
    """Job id (or step id) -> its accounting record, from slurmdbd."""
    out = subprocess.run(["sacct", "-n", "-P", *([] if steps else ["-X"]), "-o", "JobID,JobName,State,NTasks,ExitCode",
                          "-j", ",".join(job_ids)], capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line]
    return {r[0]: {"name": r[1], "state": r[2], "ntasks": r[3], "exit": r[4]} for r in rows}


def slurm_logs(proj: Path, rule: str) -> list[Path]:
    """The SLURM logs of ``rule``'s jobs, named by SLURM job id (the profile keeps them all)."""
    return sorted((proj / ".snakemake" / "slurm_logs" / f"rule_{rule}").glob("**/*.log"), key=lambda p: int(p.stem))


def test_every_job_of_the_smoke_dag_ran_as_a_slurm_job(smoke_dag):
    ids = {}
    for rule, count in SMOKE_DAG.items():
        if rule == "all":  # a target, not a job
            continue
        logs = slurm_logs(smoke_dag.proj, rule)
        assert len(logs) == count, f"{rule}: {len(logs)} SLURM jobs, {count} planned"
        ids.update({log.stem: rule for log in logs})
    records = sacct(list(ids))
    assert set(records) == set(ids)
    assert {r["state"] for r in records.values()} == {"COMPLETED"}
    assert (smoke_dag.res / "report" / "results.md").is_file()


@pytest.fixture(scope="module")
def cluster_copy(smoke_dag, tmp_path_factory):
    """A copy of the finished smoke DAG, for runs that change its results."""
    proj = copy_project(tmp_path_factory.mktemp("slurm_copy"), smoke_dag.proj, results=True)
    add_experiment(proj, "smoke_ddp", "trainer: {devices: 2, strategy: ddp}")
    return proj


# only the forced stage reruns: the trainer settings are in every training stage's view, so without
# mtime triggers the 2-device experiment would rerun pretraining and everything after it
ONLY_FORCED = ("--rerun-triggers", "mtime", "--forcerun", "cold_start_sft")


def test_a_two_device_stage_runs_as_a_two_task_slurm_job(cluster_copy, smoke_dag):
    """trainer.devices=2: the job asks for 2 tasks and srun starts both; Lightning's SLURM environment
    takes the ranks from SLURM (it starts no process itself: a third one would fail its check that
    SLURM_NTASKS equals the devices)."""
    before = len(slurm_logs(cluster_copy, "cold_start_sft"))
    snakemake(cluster_copy, "--profile", "profiles/slurm-local", "results/smoke/cold_start_sft/done.json",
              *ONLY_FORCED, experiment="smoke_ddp", env=smoke_dag.env())
    assert len(slurm_logs(cluster_copy, "cold_start_sft")) == before + 1
    job = slurm_logs(cluster_copy, "cold_start_sft")[-1].stem
    steps = sacct([job], steps=True)
    assert steps[job]["state"] == "COMPLETED"
    srun_steps = [s["ntasks"] for k, s in steps.items() if "." in k and k.split(".")[-1].isdigit()]
    assert srun_steps == ["2"], "one srun step of 2 tasks"
    done = json.loads((cluster_copy / "results" / "smoke" / "cold_start_sft" / "done.json").read_text())
    client = MlflowClient(smoke_dag.uri)
    run = client.get_run(done["run_id"])
    assert run.data.params["trainer.devices"] == "2" and run.info.status == "FINISHED"


def test_a_failing_job_comes_back_failed_with_its_log(cluster_copy, smoke_dag):
    weights = cluster_copy / "results" / "smoke" / "pretrain" / "model" / "model.safetensors"
    weights.write_bytes(b"not a safetensors file")
    out = snakemake(cluster_copy, "--profile", "profiles/slurm-local", "results/smoke/cold_start_sft/done.json",
                    *ONLY_FORCED, experiment="smoke_ddp", env=smoke_dag.env(), check=False)
    assert "Error in rule cold_start_sft" in out and "SLURM status is: 'FAILED'" in out
    assert "Traceback (most recent call last)" in out, "the stage's log, with its error"
    job = slurm_logs(cluster_copy, "cold_start_sft")[-1].stem
    assert sacct([job])[job]["state"] == "FAILED"
    assert not (cluster_copy / "results" / "smoke" / "cold_start_sft" / "done.json").exists()


def test_a_hydra_sweep_runs_its_trials_as_slurm_jobs_under_one_mlflow_run(smoke_world, tmp_path):
    t0 = time.time()
    cmd = [sys.executable, "-m", "stages.helpfulness_rm", "-m", "+sweep=slurm_local", "experiment=smoke",
           f"results_dir={smoke_world}", f"io.data_dir={smoke_world}/data", f"io.init_model={smoke_world}/pretrain/model",
           upstream(data=f"{smoke_world}/data", pretrain=f"{smoke_world}/pretrain"),
           f"hydra.sweep.dir={tmp_path}/sweep", "helpfulness_rm.optim.lr=1e-4,3e-4"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient()
    sweeps = [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()],
                                            f"tags.`r1.stage` = 'sweep' and attributes.start_time >= {int(t0 * 1000)}")]
    assert len(sweeps) == 1 and sweeps[0].info.status == "FINISHED"
    assert sweeps[0].info.run_name == "sweep:helpfulness_rm"
    trials = client.search_runs([sweeps[0].info.experiment_id],
                                f"tags.`mlflow.parentRunId` = '{sweeps[0].info.run_id}'")
    assert sorted(t.data.params["helpfulness_rm.optim.lr"] for t in trials) == ["0.0001", "0.0003"]
    assert {t.info.status for t in trials} == {"FINISHED"}
    # submitit submits the trials as one job array: its tasks <job>_0 and <job>_1, a folder each
    jobs = sorted(p.name for p in (tmp_path / "sweep" / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert len(jobs) == 2
    deadline = time.time() + 60  # hydra has the trials' results before SLURM has closed their jobs
    while {r["state"] for r in sacct(jobs).values()} & {"PENDING", "RUNNING", "COMPLETING"} and time.time() < deadline:
        time.sleep(1)
    assert {r["state"] for r in sacct(jobs).values()} == {"COMPLETED"}, "each trial a SLURM job"
