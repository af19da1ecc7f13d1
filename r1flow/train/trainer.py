"""The Lightning Trainer every training stage uses, built from ``trainer`` config."""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar

from r1flow.config.base import TrainerConfig
from r1flow.train.sharding import FSDP2, fsdp2_strategy


class RandomStates(Callback):
    """Exact resume of everything random: the torch, Python and numpy generators as they were when a
    checkpoint was written, put back before the first step a resumed run takes (not on load:
    between loading and that step Lightning starts the data loaders, which an uninterrupted run
    started at step 0). Every rank restores rank 0's states, as every rank was seeded alike."""

    def __init__(self):
        self._resumed: dict | None = None

    def state_dict(self) -> dict:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        return {"torch": torch.get_rng_state(), "python": random.getstate(),
                # in types that a ``weights_only`` checkpoint load accepts
                "numpy": (name, torch.from_numpy(keys.copy()), int(pos), int(has_gauss), float(gauss))}

    def load_state_dict(self, state: dict) -> None:
        self._resumed = state

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._resumed is None:
            return
        s, self._resumed = self._resumed, None
        torch.set_rng_state(s["torch"])
        random.setstate(s["python"])
        name, keys, pos, has_gauss, gauss = s["numpy"]
        np.random.set_state((name, keys.numpy(), pos, has_gauss, gauss))


class StepCheckpoint(ModelCheckpoint):
    """Lightning's checkpoint every ``every_n_train_steps``, written once everything its step logs
    has been logged, so that a kill right after the write loses no point of any curve (the resumed
    run starts at the next step and does not repeat it):

    - when the step also validates, after the validation (Lightning's own deferred save, as for a
      monitored metric), which Lightning runs after logging the step's training metrics;
    - otherwise the step's training metrics are handed to the loggers first. Lightning hands them
      over again right after the callbacks; the stages' logger keeps one value per metric and step
      (tracking.lightning_logger). Our own callbacks log before this one runs.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        due = self._every_n_train_steps >= 1 and trainer.global_step % self._every_n_train_steps == 0
        loop = trainer.fit_loop
        if due and loop.epoch_loop._should_check_val_fx(loop._data_fetcher):  # Lightning's "validate now?"
            self._defer_save_until_validation = True  # written by on_validation_end
            return
        if due:
            trainer._logger_connector.update_train_step_metrics()  # what Lightning logs after the callbacks
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def build_trainer(
    tcfg: TrainerConfig,
    out_dir: Path,
    logger,
    max_steps: int,
    grad_clip: float = 1.0,
    val_every: int | None = None,
    ckpt_every: int = 0,
    limit_val_batches: int | float | None = None,
    callbacks: list | None = None,
) -> L.Trainer:
    """A Trainer that checkpoints to ``out_dir/ckpt`` (``last.ckpt`` for resume) and logs to MLflow."""
    cbs = [*(callbacks or []), RandomStates()]
    cbs.append(
        StepCheckpoint(
            dirpath=str(out_dir / "ckpt"),
            save_last=True,
            save_top_k=0,
            every_n_train_steps=max(1, ckpt_every) if ckpt_every else None,
            save_on_train_epoch_end=False,  # step-based only (its deferred saves happen at validation end)
        )
    )
    if tcfg.enable_progress_bar:
        cbs.append(TQDMProgressBar(refresh_rate=10))
    return L.Trainer(
        accelerator=tcfg.accelerator,
        devices=tcfg.devices,
        num_nodes=tcfg.num_nodes,
        strategy=fsdp2_strategy(tcfg) if tcfg.strategy == FSDP2 else tcfg.strategy,
        precision=tcfg.precision,
        max_steps=max_steps,
        max_epochs=-1,
        val_check_interval=val_every,
        check_val_every_n_epoch=None if val_every else 1,
        limit_val_batches=limit_val_batches,
        num_sanity_val_steps=0,
        log_every_n_steps=tcfg.log_every_n_steps,
        accumulate_grad_batches=tcfg.accumulate_grad_batches,
        gradient_clip_val=grad_clip or None,
        logger=logger,
        callbacks=cbs,
        enable_progress_bar=tcfg.enable_progress_bar,
        enable_model_summary=False,
        default_root_dir=str(out_dir),
        # every stage's loader shards its global batches itself (r1flow/train/sft.py: rank_share)
        use_distributed_sampler=False,
    )


def final_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The last value of every metric the run logged (training and validation), for ``done.json``."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if isinstance(v, torch.Tensor | float)}
