"""Fail-fast reachability check of the MLflow tracking store.

Stages call :func:`check_tracking_server` before any compute so that a down tracking
server costs seconds, not a training run whose results cannot be recorded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from mlflow.tracking import MlflowClient

from ._common import TrackingError, quiet_mlflow_logging, tracking_uri


@contextmanager
def _temporary_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def check_tracking_server(timeout_s: float = 10) -> None:
    """Contact the tracking store once; raise :class:`TrackingError` if it is unreachable.

    MLflow's HTTP client retries with exponential backoff for minutes by default; retries
    are disabled and the request timeout is capped at ``timeout_s`` for this call only.
    For a sqlite URI this creates (and migrates) the database if it does not exist yet.
    """
    quiet_mlflow_logging()
    uri = tracking_uri()
    env = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(timeout_s))),
    }
    try:
        with _temporary_env(env):
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # any failure means "cannot record runs there"
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        raise TrackingError(f"MLflow tracking server at {uri} is unreachable: {reason}") from exc
