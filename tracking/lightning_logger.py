"""A Lightning ``MLFlowLogger`` that writes into an existing stage run without owning it.

Imported lazily by :meth:`tracking.StageRun.lightning_logger` so that importing
:mod:`tracking` (e.g. from the Snakefile) does not pull in torch/Lightning.
"""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override


class StageMLFlowLogger(MLFlowLogger):
    """``MLFlowLogger`` bound to a run whose lifecycle belongs to :func:`tracking.stage_run`.

    Three departures from the stock logger:

    * :meth:`finalize` still uploads checkpoints (when ``log_model`` is enabled) but does not
      call ``set_terminated``: the stock logger marks the run FINISHED at the end of
      ``Trainer.fit``, even though the stage keeps logging (evaluation, export) afterwards
      and may still fail. ``stage_run`` sets the final status when the stage ends.
    * :meth:`log_hyperparams` skips keys the run already has. The stage logs the resolved
      config as params up front, and MLflow refuses to change a param's value; Lightning
      truncates values to 250 characters, so a re-log of a long value would raise.
    * :meth:`log_metrics` logs a metric once per step: a step's training metrics are handed over
      twice when a checkpoint is written at that step (``r1flow.train.trainer.StepCheckpoint``
      logs them before writing it, Lightning after the callbacks).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._logged_at: dict[str, int | None] = {}  # metric -> the last step it was logged at

    @override
    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        fresh = {key: value for key, value in metrics.items() if self._logged_at.get(key, -1) != step}
        self._logged_at.update(dict.fromkeys(fresh, step))
        if fresh:
            super().log_metrics(fresh, step)

    @override
    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace) -> None:
        flat = _flatten_dict(_convert_params(params))
        existing = self.experiment.get_run(self.run_id).data.params
        fresh = {key: value for key, value in flat.items() if key not in existing}
        if fresh:
            super().log_hyperparams(fresh)

    @override
    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        if not self._initialized:
            return
        if self._checkpoint_callback:
            self._scan_and_log_checkpoints(self._checkpoint_callback)
