"""Run records: the small ``run.json`` each successful stage leaves in its output dir.

A run record is how a downstream stage (a separate process started by Snakemake) finds
the MLflow run and the LoggedModel of its upstream stages without querying MLflow.
Schema::

    {
      "run_id": str, "experiment_id": str, "experiment": str, "stage": str,
      "model_id": str | null, "model_path": str | null,
      "datasets": [{"name": str, "digest": str, "path": str, "context": str}],
      "upstream_run_ids": [str],
      "tracking_uri": str
    }
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ._common import TrackingError

RUN_RECORD_NAME = "run.json"
REQUIRED_KEYS = ("run_id", "experiment_id", "stage", "tracking_uri")


def run_record_path(directory: str | os.PathLike[str]) -> Path:
    """Path of the run record inside a stage output directory."""
    return Path(directory) / RUN_RECORD_NAME


def write_run_record(directory: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Atomically write ``record`` to ``<directory>/run.json`` and return its path.

    The JSON is written to a temporary file in the same directory and moved into place
    with :func:`os.replace`, so readers never see a half-written record.
    """
    path = run_record_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{RUN_RECORD_NAME}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_run_record(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``<directory>/run.json``.

    Raises:
        TrackingError: naming the file, if it is missing, not valid JSON, or lacks one of
            the keys ``run_id``, ``experiment_id``, ``stage``, ``tracking_uri``.
    """
    path = run_record_path(directory)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrackingError(
            f"Run record {path} is missing: the upstream stage in {Path(directory)} "
            "did not finish successfully (or was run without tracking)."
        ) from None
    except OSError as exc:
        raise TrackingError(f"Run record {path} cannot be read: {exc}") from exc
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrackingError(f"Run record {path} is malformed (invalid JSON: {exc})") from exc
    if not isinstance(record, dict):
        raise TrackingError(f"Run record {path} is malformed: expected a JSON object")
    missing = [key for key in REQUIRED_KEYS if not record.get(key)]
    if missing:
        raise TrackingError(f"Run record {path} is malformed: missing {', '.join(missing)}")
    return record
