"""The handle through which a stage logs into its MLflow run: metrics, params, artifacts, tables,
datasets (with our digests), its exported model and the models it read; and its run record."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.entities import (
    DatasetInput,
    InputTag,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
)
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from . import params as config_params_mod
from ._common import (
    TAG_DATASET_DIGEST,
    TAG_DATASET_PATH,
    TAG_MODEL_PATH,
    TAG_MODEL_SOURCE,
    TAG_STAGE,
    TrackingError,
    experiment_name,
    logged_model_name,
    mlflow_key,
)
from .datasets import MAX_INPUT_TAG_VALUE_CHARS, DigestedDataset, local_dataset_source, mlflow_dataset_digest
from .records import write_run_record

if TYPE_CHECKING:
    from .lightning_logger import StageMLFlowLogger

_log = logging.getLogger(__name__)

#: ``model_type`` of LoggedModels for checkpoints exported by a stage.
HF_MODEL_TYPE = "hf-causal-lm"
#: ``model_type`` of LoggedModels for base models no stage produced (hub ids, local paths).
HF_BASE_MODEL_TYPE = "hf-base"


def _lost_insert_race(err: BaseException) -> bool:
    """Whether ``err`` is a unique-constraint violation: an insert that another writer won.

    The SQL store wraps SQLAlchemy's ``IntegrityError`` (its message names the database driver's
    error); a tracking server returns that message in its error response.
    """
    chain: BaseException | None = err
    while chain is not None:
        if type(chain).__name__ == "IntegrityError":
            return True
        chain = chain.__cause__ or chain.__context__
    text = str(err)
    return any(marker in text for marker in ("IntegrityError", "UNIQUE constraint failed", "UniqueViolation"))


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
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._run_id = run_id
        self._experiment_id = experiment_id
        self._experiment = experiment
        self._stage = stage
        self._out_dir = Path(out_dir)
        self._work_dir = Path(work_dir) if work_dir is not None else self._out_dir
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
        abs_path = str(self._published(path))
        dataset = DigestedDataset(
            source=local_dataset_source(abs_path),
            name=name,
            digest=mlflow_dataset_digest(digest),
            num_rows=num_rows,
        )
        tags = [
            InputTag(MLFLOW_DATASET_CONTEXT, context),
            InputTag(TAG_DATASET_DIGEST, digest[:MAX_INPUT_TAG_VALUE_CHARS]),
            InputTag(TAG_DATASET_PATH, abs_path[-MAX_INPUT_TAG_VALUE_CHARS:]),
        ]
        entity = DatasetInput(dataset._to_mlflow_entity(), tags=tags)
        try:
            self._client.log_inputs(self._run_id, datasets=[entity])
        except MlflowException as err:
            # MLflow's SQL store looks a dataset up by (experiment, name, digest) and inserts it
            # when absent, in one transaction but without a lock: two runs logging the same new
            # dataset at once (the trials of a sweep, parallel Snakemake jobs) can both miss it,
            # and the later insert fails the unique constraint and rolls back. The winner's row
            # is committed by then, so the same call again finds and reuses it; logging an input
            # is idempotent (an input already on the run is not added twice).
            if not _lost_insert_race(err):
                raise
            _log.info("dataset %r was created concurrently by another run; logging it again", name)
            self._client.log_inputs(self._run_id, datasets=[entity])
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
        if not Path(model_dir).is_dir():
            raise TrackingError(f"Cannot log model {name!r}: {Path(model_dir).resolve()} is not a directory")
        path = self._published(model_dir)
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

    def _published(self, path: str | os.PathLike[str]) -> Path:
        """Where ``path`` will be once the stage's outputs are published: a file of the work
        directory is recorded at its place in the output directory."""
        path = Path(path).resolve()
        try:
            return self._out_dir.resolve() / path.relative_to(self._work_dir.resolve())
        except ValueError:  # not an output of this stage (an input, say)
            return path

    def write_record(self) -> Path:
        """Atomically write ``run.json`` into the work directory (published with the outputs);
        :func:`stage_run` calls it on success."""
        return write_run_record(
            self._work_dir,
            {
                "run_id": self._run_id,
                "experiment_id": self._experiment_id,
                "experiment": self._experiment,
                "stage": self._stage,
                "model_id": self._model_id,
                "model_path": self._model_path,
                "datasets": list(self._datasets),
                "upstream_run_ids": list(self._upstream_run_ids),
                "tracking_uri": self._tracking_uri,
            },
        )
