"""Shared plumbing for the tracking package: errors, tag names, URIs, experiments, git info.

Everything here is internal; the public names are re-exported from :mod:`tracking`.
This package is the only place in r1flow that imports :mod:`mlflow`.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

#: Environment variable carrying the id of the Snakemake-level "pipeline" run.
PIPELINE_RUN_ENV = "R1FLOW_PIPELINE_RUN_ID"

#: Every MLflow experiment of the project is named ``f"{EXPERIMENT_PREFIX}/{experiment}"``.
EXPERIMENT_PREFIX = "r1flow"

# Tag keys (run tags unless stated otherwise).
TAG_STAGE = "r1.stage"
TAG_EXPERIMENT = "r1.experiment"
TAG_GIT_COMMIT = "r1.git_commit"
TAG_GIT_DIRTY = "r1.git_dirty"
TAG_CONFIG_DIGEST = "r1.config_digest"
TAG_CODE_DIGEST = "r1.code_digest"
TAG_UPSTREAM_RUN_IDS = "r1.upstream_run_ids"
TAG_MODEL_PATH = "r1.path"  # LoggedModel tag: absolute path of the weights on disk
TAG_MODEL_SOURCE = "r1.source"  # LoggedModel tag: hub id / path of an external base model
TAG_DATASET_DIGEST = "r1.digest"  # dataset input tag: our full, untruncated digest
TAG_DATASET_PATH = "r1.path"  # dataset input tag: absolute path of the dataset
TAG_HOST = "r1.host"  # the machine of the process that holds the run
TAG_PID = "r1.pid"  # that process: a run left RUNNING by a dead one is closed (pipeline.close_abandoned_runs)
TAG_PARENT_RUN_ID = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"

_log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """Raised for any tracking problem the pipeline should stop on (unreachable
    server, missing or malformed run record, invalid model directory, ...)."""


def quiet_mlflow_logging() -> None:
    """Lower MLflow's (and its DB migration tool's) chatter to warnings.

    MLflow logs at INFO on every sqlite store creation/migration and on system-metrics
    start/stop, which drowns the stage output.
    """
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def tracking_uri() -> str:
    """The tracking URI used by every r1flow process.

    ``$MLFLOW_TRACKING_URI`` when set, else a sqlite database ``mlflow.db`` in the current
    working directory, in MLflow 3's own default form but made absolute, so that a stage
    running in another directory still finds the same store.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def activate_tracking_uri() -> str:
    """Point MLflow's fluent API at :func:`tracking_uri` and return that URI."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def experiment_name(experiment: str) -> str:
    """The MLflow experiment name for an r1flow experiment (``"tiny"`` -> ``"r1flow/tiny"``)."""
    return f"{EXPERIMENT_PREFIX}/{experiment}"


def get_or_create_experiment(client: MlflowClient, experiment: str) -> str:
    """Return the id of the MLflow experiment for ``experiment``, creating it if needed.

    A concurrent creation by another stage process (Snakemake runs jobs in parallel) is
    handled by re-reading the experiment after a failed create.
    """
    name = experiment_name(experiment)
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise TrackingError(
                f"MLflow experiment {name!r} is deleted; restore it "
                f"(mlflow experiments restore --experiment-id {found.experiment_id}) "
                "or permanently delete it before running the pipeline."
            )
        return found.experiment_id
    try:
        return client.create_experiment(name, tags={TAG_EXPERIMENT: experiment})
    except mlflow.exceptions.MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _git(*args: str) -> str | None:
    """Run a read-only git command in the cwd; None if git or the repository is unavailable."""
    try:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_tags() -> dict[str, str]:
    """``r1.git_commit`` (HEAD or "unknown") and ``r1.git_dirty`` ("true"/"false"/"unknown").

    Dirtiness only considers tracked files, so pipeline outputs in the work tree do not
    make every run "dirty".
    """
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        TAG_GIT_COMMIT: commit or "unknown",
        TAG_GIT_DIRTY: "unknown" if status is None else str(bool(status)).lower(),
    }


def process_tags() -> dict[str, str]:
    """``r1.host`` and ``r1.pid`` of this process, which holds the run being started."""
    return {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid())}


_INVALID_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def mlflow_key(key: str) -> str:
    """Make a metric/param/tag name acceptable to MLflow.

    MLflow only allows alphanumerics, ``_ - . / : `` and spaces; ``@`` (as in ``pass@1``)
    becomes ``_at_``, any other disallowed character ``_``.
    """
    return _INVALID_KEY_CHARS.sub("_", key.replace("@", "_at_"))


_BAD_MODEL_NAME_CHARS = re.compile(r"""[/:.%"']+""")


def logged_model_name(name: str) -> str:
    """Make ``name`` acceptable as a LoggedModel name.

    MLflow 3 rejects ``/ : . % " '`` in model names, which hub ids ("Qwen/Qwen2.5-0.5B")
    and paths routinely contain; they are replaced by ``-``.
    """
    cleaned = _BAD_MODEL_NAME_CHARS.sub("-", name).strip("-")
    return cleaned or "model"
