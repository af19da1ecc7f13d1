"""MLflow tracking for r1flow: the only package of the project that imports :mod:`mlflow`.

* :func:`tracking_uri` / :func:`check_tracking_server`: where runs go, and a fail-fast check.
* :func:`start_pipeline_run` / :func:`end_pipeline_run`: the per-invocation parent run
  (called by the Snakefile, id exported as ``$R1FLOW_PIPELINE_RUN_ID``).
* :func:`stage_run` -> :class:`StageRun`: one run per stage, linked to its upstream stages
  through run records (``<stage out dir>/run.json``, see :func:`read_run_record`).
* ``python -m tracking.lineage <run id | stage dir | models:/<name>@<alias>>``: walk a run's
  upstream chain.
* :mod:`tracking.registry`: register a stage's model under an alias, resolve an alias to its run.
"""

from ._common import PIPELINE_RUN_ENV, TrackingError, quiet_mlflow_logging, tracking_uri
from .handle import StageRun
from .pipeline import end_pipeline_run, start_pipeline_run
from .records import read_run_record
from .server import check_tracking_server
from .stage import stage_run

quiet_mlflow_logging()

__all__ = [
    "PIPELINE_RUN_ENV",
    "StageRun",
    "TrackingError",
    "check_tracking_server",
    "end_pipeline_run",
    "read_run_record",
    "stage_run",
    "start_pipeline_run",
    "tracking_uri",
]
