"""The pipeline run: one MLflow run per Snakemake invocation, parent of all stage runs.

The Snakefile calls :func:`start_pipeline_run` in ``onstart``, exports the returned id as
``$R1FLOW_PIPELINE_RUN_ID`` (:data:`PIPELINE_RUN_ENV`) so stage processes nest under it,
and calls :func:`end_pipeline_run` in ``onsuccess`` / ``onerror``. The run is handled
through :class:`~mlflow.tracking.MlflowClient` only, so it never becomes the active run
of the Snakemake process.
"""

from __future__ import annotations

import logging
import os
import socket

from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from ._common import (
    TAG_EXPERIMENT,
    TAG_HOST,
    TAG_PID,
    TAG_STAGE,
    TrackingError,
    activate_tracking_uri,
    get_or_create_experiment,
    git_tags,
    process_tags,
    quiet_mlflow_logging,
)

_log = logging.getLogger(__name__)

PIPELINE_RUN_NAME = "pipeline"
_END_STATUSES = ("FINISHED", "FAILED", "KILLED")


def start_pipeline_run(experiment: str, tags: dict[str, str] | None = None, run_name: str = PIPELINE_RUN_NAME) -> str:
    """Create the ``pipeline`` run (or a parent run named ``run_name``, e.g. a sweep's) in
    experiment ``r1flow/<experiment>`` and return its id.

    The run stays RUNNING until :func:`end_pipeline_run`; it is not made the active run.
    Tags: ``r1.stage=pipeline``, ``r1.experiment``, ``r1.git_commit``, ``r1.git_dirty``,
    MLflow's context tags (user, source) and ``tags`` (which win on conflicts).
    """
    quiet_mlflow_logging()
    uri = activate_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    experiment_id = get_or_create_experiment(client, experiment)
    close_abandoned_runs(client, experiment_id)
    run_tags = {TAG_STAGE: PIPELINE_RUN_NAME, TAG_EXPERIMENT: experiment, **git_tags(), **process_tags()}
    run_tags.update({key: str(value) for key, value in (tags or {}).items()})
    run = client.create_run(experiment_id, run_name=run_name, tags=resolve_tags(run_tags))
    return run.info.run_id


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def close_abandoned_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """End as KILLED the runs of the experiment left RUNNING by a process that died without ending
    them (a killed job, a killed snakemake), and return their ids. Only runs held by a process of
    this machine are checked (tags ``r1.host``, ``r1.pid``): a run held on another machine (a
    cluster node) may be alive and is left alone. A killed training stage's run is reopened, not
    replaced, when the stage resumes from its checkpoint."""
    host, closed = socket.gethostname(), []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        if tags.get(TAG_HOST) == host and tags.get(TAG_PID, "").isdigit() and not _alive(int(tags[TAG_PID])):
            client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
    if closed:
        _log.warning("closed %d run(s) left RUNNING by killed processes as KILLED: %s", len(closed), ", ".join(closed))
    return closed


def end_pipeline_run(run_id: str, status: str = "FINISHED") -> None:
    """Terminate the pipeline run with ``status`` (FINISHED, FAILED or KILLED)."""
    status = status.upper()
    if status not in _END_STATUSES:
        raise TrackingError(f"Invalid pipeline run status {status!r}; use one of {_END_STATUSES}")
    quiet_mlflow_logging()
    uri = activate_tracking_uri()
    MlflowClient(tracking_uri=uri).set_terminated(run_id, status=status)
