"""The pipeline run: one MLflow run per Snakemake invocation, parent of all stage runs.

The Snakefile calls :func:`start_pipeline_run` in ``onstart``, exports the returned id as
``$R1FLOW_PIPELINE_RUN_ID`` (:data:`PIPELINE_RUN_ENV`) so stage processes nest under it,
and calls :func:`end_pipeline_run` in ``onsuccess`` / ``onerror``. The run is handled
through :class:`~mlflow.tracking.MlflowClient` only, so it never becomes the active run
of the Snakemake process.
"""

from __future__ import annotations

from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from ._common import (
    TAG_EXPERIMENT,
    TAG_STAGE,
    TrackingError,
    activate_tracking_uri,
    get_or_create_experiment,
    git_tags,
    quiet_mlflow_logging,
)

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
    run_tags = {TAG_STAGE: PIPELINE_RUN_NAME, TAG_EXPERIMENT: experiment, **git_tags()}
    run_tags.update({key: str(value) for key, value in (tags or {}).items()})
    run = client.create_run(experiment_id, run_name=run_name, tags=resolve_tags(run_tags))
    return run.info.run_id


def end_pipeline_run(run_id: str, status: str = "FINISHED") -> None:
    """Terminate the pipeline run with ``status`` (FINISHED, FAILED or KILLED)."""
    status = status.upper()
    if status not in _END_STATUSES:
        raise TrackingError(f"Invalid pipeline run status {status!r}; use one of {_END_STATUSES}")
    quiet_mlflow_logging()
    uri = activate_tracking_uri()
    MlflowClient(tracking_uri=uri).set_terminated(run_id, status=status)
