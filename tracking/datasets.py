"""Datasets as MLflow run inputs: a metadata-only dataset that carries our own content digest (the
weights and data stay on disk; MLflow records what was read and its digest)."""

from __future__ import annotations

import json

from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import get_registered_sources
from mlflow.data.meta_dataset import MetaDataset

from ._common import TrackingError

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


def local_dataset_source(path: str) -> DatasetSource:
    """MLflow's own dataset source for a local path (``LocalArtifactDatasetSource``).

    Looked up in the source registry rather than with ``resolve_dataset_source``, which
    warns because the local source is registered twice.
    """
    for source_cls in get_registered_sources():
        if source_cls._get_source_type() == "local" and source_cls._can_resolve(path):
            return source_cls._resolve(path)
    raise TrackingError(f"MLflow has no local dataset source able to describe {path}")


class DigestedDataset(MetaDataset):
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
