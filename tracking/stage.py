"""Stage runs: one MLflow run per pipeline stage process.

:func:`stage_run` opens the run (nested under the pipeline run, linked to the runs and
LoggedModels of its upstream stages), logs the resolved config, and yields a
:class:`StageRun` through which the stage logs metrics, datasets, artifacts and its
exported model. On success it writes the stage's run record (``run.json``) and ends the
run FINISHED; on an exception it ends the run FAILED (KILLED on Ctrl-C) and writes nothing.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import get_registered_sources
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import (
    DatasetInput,
    InputTag,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    RunTag,
)
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from . import params as config_params_mod
from ._common import (
    PIPELINE_RUN_ENV,
    TAG_CODE_DIGEST,
    TAG_CONFIG_DIGEST,
    TAG_DATASET_DIGEST,
    TAG_DATASET_PATH,
    TAG_EXPERIMENT,
    TAG_MODEL_PATH,
    TAG_MODEL_SOURCE,
    TAG_PARENT_RUN_ID,
    TAG_STAGE,
    TAG_UPSTREAM_RUN_IDS,
    TrackingError,
    activate_tracking_uri,
    experiment_name,
    get_or_create_experiment,
    git_tags,
    logged_model_name,
    mlflow_key,
    quiet_mlflow_logging,
)
from .records import read_run_record, write_run_record

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .lightning_logger import StageMLFlowLogger

_log = logging.getLogger(__name__)

#: ``model_type`` of LoggedModels for checkpoints exported by a stage.
HF_MODEL_TYPE = "hf-causal-lm"
#: ``model_type`` of LoggedModels for base models no stage produced (hub ids, local paths).
HF_BASE_MODEL_TYPE = "hf-base"
#: MLflow stores dataset digests in a 36-character column.
MAX_MLFLOW_DIGEST_CHARS = 36
#: MLflow's limit on an input tag value.
MAX_INPUT_TAG_VALUE_CHARS = 500


def mlflow_dataset_digest(digest: str) -> str:
    """The digest stored in MLflow's dataset table for one of our digests.

    MLflow caps dataset digests at 36 characters; a longer digest (a sha256 hex, possibly
    with a ``sha256:`` prefix) is shortened to its first 36 hex characters. The full digest
    is kept in the ``r1.digest`` input tag and in the run record.
    """
    if len(digest) <= MAX_MLFLOW_DIGEST_CHARS:
        return digest
    return digest.split(":", 1)[-1][:MAX_MLFLOW_DIGEST_CHARS]


def _local_dataset_source(path: str) -> DatasetSource:
    """MLflow's own dataset source for a local path (``LocalArtifactDatasetSource``).

    Looked up in the source registry rather than with ``resolve_dataset_source``, which
    warns because the local source is registered twice.
    """
    for source_cls in get_registered_sources():
        if source_cls._get_source_type() == "local" and source_cls._can_resolve(path):
            return source_cls._resolve(path)
    raise TrackingError(f"MLflow has no local dataset source able to describe {path}")


class _DigestedDataset(MetaDataset):
    """A metadata-only dataset carrying our digest and, optionally, a row-count profile."""

    def __init__(self, source: DatasetSource, name: str, digest: str, num_rows: int | None = None) -> None:
        self._num_rows = num_rows
        super().__init__(source=source, name=name, digest=digest)

    @property
    def profile(self) -> dict[str, int] | None:
        return None if self._num_rows is None else {"num_rows": self._num_rows}

    def to_dict(self) -> dict[str, str]:
        config = super().to_dict()
        if self.profile is not None:
            config["profile"] = json.dumps(self.profile)
        return config


class StageRun:
    """Handle on the MLflow run of one stage, yielded by :func:`stage_run`.

    All logging goes through an :class:`~mlflow.tracking.MlflowClient` with this run's id,
    so it does not depend on MLflow's global "active run" state.
    """

    def __init__(
        self,
        *,
        run_id: str,
        experiment_id: str,
        experiment: str,
        stage: str,
        out_dir: str | os.PathLike[str],
        tracking_uri: str,
        upstream_run_ids: Sequence[str] = (),
    ) -> None:
        self._run_id = run_id
        self._experiment_id = experiment_id
        self._experiment = experiment
        self._stage = stage
        self._out_dir = Path(out_dir)
        self._tracking_uri = tracking_uri
        self._upstream_run_ids = list(upstream_run_ids)
        self._client = MlflowClient(tracking_uri=tracking_uri)
        self._datasets: list[dict[str, Any]] = []
        self._model_id: str | None = None
        self._model_path: str | None = None
        self._input_model_ids: set[str] = set()

    # -- identity -------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """MLflow run id of this stage."""
        return self._run_id

    @property
    def experiment_id(self) -> str:
        """MLflow experiment id (of ``r1flow/<experiment>``)."""
        return self._experiment_id

    @property
    def stage(self) -> str:
        """Stage name (the ``r1.stage`` tag)."""
        return self._stage

    @property
    def tracking_uri(self) -> str:
        """Tracking URI the run lives in."""
        return self._tracking_uri

    @property
    def model_id(self) -> str | None:
        """Id of the LoggedModel registered by :meth:`log_hf_model`, if any."""
        return self._model_id

    # -- Lightning ----------------------------------------------------------------------------

    def lightning_logger(self, prefix: str = "") -> StageMLFlowLogger:
        """A Lightning ``MLFlowLogger`` writing into this run.

        Its ``finalize`` does not terminate the run (see
        :class:`tracking.lightning_logger.StageMLFlowLogger`): :func:`stage_run` sets the
        final status. ``prefix`` is prepended to metric names (joined with ``-``).
        """
        from .lightning_logger import StageMLFlowLogger

        return StageMLFlowLogger(
            experiment_name=experiment_name(self._experiment),
            run_id=self._run_id,
            tracking_uri=self._tracking_uri,
            prefix=prefix,
        )

    # -- metrics, params, tags ----------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log numeric metrics at ``step`` (0 when None) in one batch.

        Names are made acceptable to MLflow (``eval/pass@1`` is logged as ``eval/pass_at_1``).
        """
        timestamp = int(time.time() * 1000)
        batch = [
            Metric(key=mlflow_key(key), value=float(value), timestamp=timestamp, step=step or 0)
            for key, value in metrics.items()
        ]
        if batch:
            self._client.log_batch(self._run_id, metrics=batch)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params (values stringified and cut to MLflow's 6000-character limit).

        Names are made acceptable to MLflow like metric names. MLflow refuses to change
        the value of an already logged param.
        """
        limit = config_params_mod.MAX_PARAM_VALUE_CHARS
        batch = [Param(mlflow_key(key), str(value)[:limit]) for key, value in params.items()]
        if batch:
            self._client.log_batch(self._run_id, params=batch)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values stringified, names made acceptable to MLflow)."""
        batch = [RunTag(mlflow_key(key), str(value)) for key, value in tags.items()]
        if batch:
            self._client.log_batch(self._run_id, tags=batch)

    # -- artifacts ----------------------------------------------------------------------------

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload a file, or the contents of a directory, under ``artifact_path``."""
        local = os.fspath(path)
        if os.path.isdir(local):
            self._client.log_artifacts(self._run_id, local, artifact_path)
        else:
            self._client.log_artifact(self._run_id, local, artifact_path)

    def log_dict(self, obj: Mapping[str, Any] | list[Any], artifact_file: str) -> None:
        """Save ``obj`` as a JSON or YAML artifact (format from the file extension)."""
        self._client.log_dict(self._run_id, config_params_mod.to_plain(obj), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Save ``text`` as an artifact."""
        self._client.log_text(self._run_id, text, artifact_file)

    def log_figure(self, fig: Figure, artifact_file: str) -> None:
        """Save a matplotlib figure as an image artifact (e.g. ``plots/reward.png``)."""
        self._client.log_figure(self._run_id, fig, artifact_file)

    def log_table(self, rows: Sequence[Mapping[str, Any]], artifact_file: str) -> None:
        """Log rows (e.g. sampled completions) as an MLflow table (``.json`` artifact).

        Columns are the union of the rows' keys in first-seen order; missing cells are null.
        Logging twice to the same file appends rows.
        """
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        table = {col: [config_params_mod.to_plain(row.get(col)) for row in rows] for col in columns}
        self._client.log_table(self._run_id, table, artifact_file)

    # -- datasets -----------------------------------------------------------------------------

    def log_dataset(
        self,
        path: str | os.PathLike[str],
        name: str,
        digest: str,
        context: str = "train",
        num_rows: int | None = None,
    ) -> None:
        """Record a dataset file/directory as an input of the run, identified by ``digest``.

        Logged as an MLflow dataset input (a metadata-only dataset with a local source,
        ``mlflow.data.context=<context>``, ``r1.digest=<full digest>``, ``r1.path``) and
        added to the run record's ``datasets``.
        """
        abs_path = str(Path(path).resolve())
        dataset = _DigestedDataset(
            source=_local_dataset_source(abs_path),
            name=name,
            digest=mlflow_dataset_digest(digest),
            num_rows=num_rows,
        )
        tags = [
            InputTag(MLFLOW_DATASET_CONTEXT, context),
            InputTag(TAG_DATASET_DIGEST, digest[:MAX_INPUT_TAG_VALUE_CHARS]),
            InputTag(TAG_DATASET_PATH, abs_path[-MAX_INPUT_TAG_VALUE_CHARS:]),
        ]
        self._client.log_inputs(self._run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)])
        self._datasets.append({"name": name, "digest": digest, "path": abs_path, "context": context})

    # -- models -------------------------------------------------------------------------------

    def log_hf_model(
        self, model_dir: str | os.PathLike[str], name: str, params: Mapping[str, Any] | None = None
    ) -> str:
        """Register an exported Hugging Face checkpoint directory as this stage's model.

        Creates an external MLflow 3 LoggedModel (weights stay on disk; the model carries
        ``r1.path`` and ``r1.stage`` tags), logs it as an output of the run and keeps it in
        the run record. Returns the model id. A stage produces one model: calling this again
        replaces the model in the run record (both stay outputs of the run).
        """
        path = Path(model_dir).resolve()
        if not path.is_dir():
            raise TrackingError(f"Cannot log model {name!r}: {path} is not a directory")
        model = mlflow.create_external_model(
            name=logged_model_name(name),
            source_run_id=self._run_id,
            tags={TAG_MODEL_PATH: str(path), TAG_STAGE: self._stage},
            params={key: str(value) for key, value in (params or {}).items()},
            model_type=HF_MODEL_TYPE,
            experiment_id=self._experiment_id,
        )
        if model.status != LoggedModelStatus.READY:  # create_external_model finalizes already
            model = self._client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        self._client.log_outputs(self._run_id, [LoggedModelOutput(model.model_id, step=0)])
        self._model_id = model.model_id
        self._model_path = str(path)
        return model.model_id

    def register_external_base(self, name_or_path: str) -> str:
        """Return the id of a LoggedModel standing for a base model no stage produced.

        ``name_or_path`` is a hub id (``"Qwen/Qwen2.5-0.5B"``) or a local path (made
        absolute). The model is reused if this experiment already has one for the same
        source (``r1.source`` tag), so all stages starting from it share one model id.
        Pass the id to :meth:`log_input_model` to record it as an input of this run.
        """
        source = str(Path(name_or_path).resolve()) if os.path.exists(name_or_path) else name_or_path
        if "'" not in source:  # not expressible in a filter string: register a new model
            existing = self._client.search_logged_models(
                experiment_ids=[self._experiment_id],
                filter_string=f"tags.`{TAG_MODEL_SOURCE}` = '{source}'",
                max_results=1,
            )
            if existing:
                return existing[0].model_id
        model = mlflow.create_external_model(
            name=logged_model_name(name_or_path),
            source_run_id=self._run_id,
            tags={TAG_MODEL_SOURCE: source},
            model_type=HF_BASE_MODEL_TYPE,
            experiment_id=self._experiment_id,
        )
        return model.model_id

    def log_input_model(self, model_id: str) -> None:
        """Record a LoggedModel as an input of this run (once per model)."""
        if model_id in self._input_model_ids:
            return
        self._client.log_inputs(self._run_id, models=[LoggedModelInput(model_id)])
        self._input_model_ids.add(model_id)

    # -- run record ---------------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """The run record as it would be written now."""
        return {
            "run_id": self._run_id,
            "experiment_id": self._experiment_id,
            "experiment": self._experiment,
            "stage": self._stage,
            "model_id": self._model_id,
            "model_path": self._model_path,
            "datasets": list(self._datasets),
            "upstream_run_ids": list(self._upstream_run_ids),
            "tracking_uri": self._tracking_uri,
        }

    def write_record(self) -> Path:
        """Atomically write ``<out_dir>/run.json``; :func:`stage_run` calls it on success."""
        return write_run_record(self._out_dir, self.record())


def _log_config(run: StageRun, config: Mapping[str, Any], param_sections: Iterable[str] | None) -> None:
    """Log the full config as ``config/resolved.yaml`` and a flattened subset as params."""
    run.log_text(config_params_mod.config_to_yaml(config), "config/resolved.yaml")
    run.log_params(config_params_mod.config_params(config, sections=param_sections))


@contextmanager
def stage_run(
    stage: str,
    experiment: str,
    config: Mapping[str, Any],
    config_digest: str,
    code_digest: str,
    upstream_dirs: Sequence[str | os.PathLike[str]] = (),
    out_dir: str | os.PathLike[str] = ".",
    run_name: str | None = None,
    nested_parent: str | None = None,
    system_metrics: bool = True,
    param_sections: Sequence[str] | None = None,
) -> Iterator[StageRun]:
    """Run a pipeline stage inside an MLflow run.

    Args:
        stage: stage name, tag ``r1.stage``.
        experiment: r1flow experiment; the MLflow experiment is ``r1flow/<experiment>``.
        config: the full resolved config (plain dict); logged as ``config/resolved.yaml``
            plus flattened params (see :func:`tracking.params.config_params`).
        config_digest: tag ``r1.config_digest``.
        code_digest: tag ``r1.code_digest``.
        upstream_dirs: output dirs of upstream stages; their run records are read before
            the run starts (a missing one raises :class:`TrackingError` naming the file),
            their run ids go to tag ``r1.upstream_run_ids`` and their models become inputs.
        out_dir: where ``run.json`` is written on success.
        run_name: MLflow run name, default ``stage``.
        nested_parent: parent run id; default ``$R1FLOW_PIPELINE_RUN_ID``; sets
            ``mlflow.parentRunId`` when present.
        system_metrics: log CPU/memory (and GPU when available) system metrics.
        param_sections: config sections (top-level keys or dotted paths) to log as params,
            in priority order; None logs the whole config (both capped at 200 params).

    Yields:
        The :class:`StageRun`. On normal exit the run record is written and the run ends
        FINISHED; on an exception the run ends FAILED (KILLED for KeyboardInterrupt), no
        record is written and the exception propagates.
    """
    quiet_mlflow_logging()
    uri = activate_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
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
    upstream_run_ids = list(dict.fromkeys(record["run_id"] for record in upstream))

    if mlflow.active_run() is not None:
        raise TrackingError(
            f"Cannot start stage run {stage!r}: run {mlflow.active_run().info.run_id} is "
            "already active in this process."
        )
    experiment_id = get_or_create_experiment(client, experiment)
    tags = {
        TAG_STAGE: stage,
        TAG_EXPERIMENT: experiment,
        TAG_CONFIG_DIGEST: config_digest,
        TAG_CODE_DIGEST: code_digest,
        TAG_UPSTREAM_RUN_IDS: ",".join(upstream_run_ids),
        **git_tags(),
    }
    parent = nested_parent or os.environ.get(PIPELINE_RUN_ENV) or None
    if parent:
        tags[TAG_PARENT_RUN_ID] = parent
    if system_metrics and importlib.util.find_spec("psutil") is None:
        _log.warning("psutil is not installed: system metrics are not logged.")
        system_metrics = False

    active = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name or stage,
        tags=tags,
        log_system_metrics=system_metrics,
    )
    run = StageRun(
        run_id=active.info.run_id,
        experiment_id=experiment_id,
        experiment=experiment,
        stage=stage,
        out_dir=out_dir,
        tracking_uri=uri,
        upstream_run_ids=upstream_run_ids,
    )
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
