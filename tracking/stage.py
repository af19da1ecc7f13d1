"""Stage runs: one MLflow run per pipeline stage process.

:func:`stage_run` opens the run (nested under the pipeline run, linked to the runs and
LoggedModels of its upstream stages), logs the resolved config, and yields a
:class:`StageRun` through which the stage logs metrics, datasets, artifacts and its
exported model. On success it writes the stage's run record (``run.json``) and ends the
run FINISHED; on an exception it ends the run FAILED (KILLED on Ctrl-C) and writes nothing.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from . import params as config_params_mod
from ._common import (
    PIPELINE_RUN_ENV,
    TAG_CODE_DIGEST,
    TAG_CONFIG_DIGEST,
    TAG_EXPERIMENT,
    TAG_PARENT_RUN_ID,
    TAG_STAGE,
    TAG_UPSTREAM_RUN_IDS,
    TrackingError,
    activate_tracking_uri,
    get_or_create_experiment,
    git_tags,
    process_tags,
    quiet_mlflow_logging,
)
from .handle import StageRun
from .records import read_run_record

if TYPE_CHECKING:
    pass

_log = logging.getLogger(__name__)


def _log_config(run: StageRun, config: Mapping[str, Any], param_sections: Iterable[str] | None) -> None:
    """Log the full config as ``config/resolved.yaml`` and a flattened subset as params."""
    run.log_text(config_params_mod.config_to_yaml(config), "config/resolved.yaml")
    run.log_params(config_params_mod.config_params(config, sections=param_sections))


def _upstream_records(upstream_dirs: Sequence[str | os.PathLike[str]], uri: str) -> list[dict[str, Any]]:
    """The run records of the upstream stages (a missing one raises, naming the file)."""
    upstream = [read_run_record(directory) for directory in upstream_dirs]
    for directory, record in zip(upstream_dirs, upstream):
        if record["tracking_uri"] != uri:
            _log.warning(
                "Upstream run record in %s points to tracking store %s, not %s: "
                "lineage links to it will not resolve.",
                directory,
                record["tracking_uri"],
                uri,
            )
    return upstream


def _resumable(client: MlflowClient, run_id: str | None, experiment_id: str, stage: str) -> str | None:
    """``run_id`` if it is an unfinished run of ``stage`` in the experiment (one a killed job left),
    else None (a new run starts)."""
    if not run_id:
        return None
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    if (run.info.experiment_id != experiment_id or run.data.tags.get(TAG_STAGE) != stage
            or run.info.status == "FINISHED"):
        return None
    return run_id


def _start_run(stage: str, experiment: str, uri: str, dirs: tuple, run_name: str | None, system_metrics: bool,
               upstream: list[dict[str, Any]], tags: dict[str, str | None], resume: str | None = None) -> StageRun:
    """Start the stage's MLflow run with its tags (``tags`` with a None value are left out), or
    reopen run ``resume`` when it is this stage's unfinished run."""
    client = MlflowClient(tracking_uri=uri)
    experiment_id = get_or_create_experiment(client, experiment)
    upstream_run_ids = list(dict.fromkeys(record["run_id"] for record in upstream))
    run_tags = {TAG_STAGE: stage, TAG_EXPERIMENT: experiment, TAG_UPSTREAM_RUN_IDS: ",".join(upstream_run_ids),
                **git_tags(), **process_tags(), **{k: v for k, v in tags.items() if v}}
    if system_metrics and importlib.util.find_spec("psutil") is None:
        _log.warning("psutil is not installed: system metrics are not logged.")
        system_metrics = False
    resume = _resumable(client, resume, experiment_id, stage)
    if resume:  # the run goes on: RUNNING again, under this invocation's pipeline run
        active = mlflow.start_run(run_id=resume, log_system_metrics=system_metrics)
        mlflow.set_tags(run_tags)
        _log.info("continuing MLflow run %s of the interrupted %s", resume, stage)
    else:
        active = mlflow.start_run(experiment_id=experiment_id, run_name=run_name or stage, tags=run_tags,
                                  log_system_metrics=system_metrics)
    return StageRun(run_id=active.info.run_id, experiment_id=experiment_id, experiment=experiment, stage=stage,
                    out_dir=dirs[0], work_dir=dirs[1], tracking_uri=uri, upstream_run_ids=upstream_run_ids)


@contextmanager
def stage_run(
    stage: str,
    experiment: str,
    config: Mapping[str, Any],
    config_digest: str,
    code_digest: str,
    upstream_dirs: Sequence[str | os.PathLike[str]] = (),
    out_dir: str | os.PathLike[str] = ".",
    work_dir: str | os.PathLike[str] | None = None,
    run_name: str | None = None,
    nested_parent: str | None = None,
    system_metrics: bool = True,
    param_sections: Sequence[str] | None = None,
    resume_run_id: str | None = None,
) -> Iterator[StageRun]:
    """Run a pipeline stage inside an MLflow run of experiment ``r1flow/<experiment>``.

    ``config`` (the resolved config, a plain dict) is logged as ``config/resolved.yaml`` and, for
    ``param_sections`` (dotted paths, in priority order; None: all, capped at 200), as params. The
    run records of ``upstream_dirs`` are read first (a missing one raises :class:`TrackingError`
    naming the file): their run ids become tag ``r1.upstream_run_ids`` and their models the run's
    input models. The run nests under ``nested_parent`` (default ``$R1FLOW_PIPELINE_RUN_ID``).
    ``resume_run_id``: an interrupted attempt's run, reopened if it is this stage's and unfinished.
    ``work_dir``: where the stage writes until its outputs move to ``out_dir`` (recorded paths name
    their places there). Yields the :class:`StageRun`. On normal exit the run record is written to
    ``work_dir``, the run ends FINISHED; on an exception FAILED (KILLED on Ctrl-C), with no record."""
    quiet_mlflow_logging()
    uri = activate_tracking_uri()
    upstream = _upstream_records(upstream_dirs, uri)
    if mlflow.active_run() is not None:
        raise TrackingError(f"Cannot start stage run {stage!r}: run {mlflow.active_run().info.run_id} is "
                            "already active in this process.")
    parent = nested_parent or os.environ.get(PIPELINE_RUN_ENV) or None
    run = _start_run(stage, experiment, uri, (out_dir, work_dir or out_dir), run_name, system_metrics, upstream,
                     {TAG_CONFIG_DIGEST: config_digest, TAG_CODE_DIGEST: code_digest, TAG_PARENT_RUN_ID: parent},
                     resume=resume_run_id)
    try:
        _log_config(run, config, param_sections)
        for record in upstream:
            if record.get("model_id"):
                run.log_input_model(record["model_id"])
        yield run
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    try:
        record_path = run.write_record()
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    try:
        mlflow.end_run("FINISHED")
    except BaseException:
        # The record must not claim a run that MLflow never saw finish.
        record_path.unlink(missing_ok=True)
        raise
