"""A Hydra callback that makes every ``-m`` sweep one MLflow parent run with a child per trial.

Registered in conf/config.yaml (``hydra.callbacks.mlflow_sweep``). On ``on_multirun_start`` it
creates a run named ``sweep:<stage>`` (tag ``r1.stage=sweep``, the sweep's overrides as a tag) and
exports its id in ``$R1FLOW_PIPELINE_RUN_ID``, so each trial's stage run nests under it; the
trials sit side by side in the MLflow UI's run comparison.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ._common import PIPELINE_RUN_ENV
from .pipeline import end_pipeline_run, start_pipeline_run


class SweepParentRun(Callback):
    def __init__(self) -> None:
        self.run_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        hc = config.hydra  # HydraConfig is not set yet when a multirun starts: its config carries it
        main = getattr(sys.modules.get("__main__"), "__spec__", None)  # python -m stages.<stage>
        stage = main.name.rsplit(".", 1)[-1] if main else hc.job.name
        self.run_id = start_pipeline_run(
            str(config.name),
            tags={"r1.stage": "sweep", "r1.sweep.stage": stage,
                  "r1.sweep.overrides": " ".join(hc.overrides.task)},
            run_name=f"sweep:{stage}",
        )
        os.environ[PIPELINE_RUN_ENV] = self.run_id

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.run_id:
            end_pipeline_run(self.run_id, "FINISHED")
            os.environ.pop(PIPELINE_RUN_ENV, None)
