"""Exact resume of the training loop itself, in process: a run resumed from *any* of its
checkpoints (mid-epoch, on an epoch's last batch, on a step that validates) trains on the batches,
draws the random numbers and logs the metrics that the uninterrupted run did from there on; and a
step that validates writes its checkpoint after the validation, so a kill right after the write
loses none of its validation metrics. The stages' kill-and-resume tests (tests/test_distributed.py, tests/test_grpo_stage.py)
build on this."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from r1flow.train.sft import BucketBatchSampler, ResumableLoader, ShuffledBatchSampler, eval_loader
from r1flow.train.trainer import RandomStates, StepCheckpoint

ROWS = 7  # batches of 2: 3 full ones and a short one per epoch
STEPS = 11  # almost 4 epochs of the shuffled sampler, almost 3 of the bucketed one


class Recorder(L.LightningModule):
    """Trains a scalar on the rows of each batch and records, per step, the rows and a random draw."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[int, list[int], float]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.global_step, batch.tolist(), torch.rand(()).item()))
        loss = ((self.w - batch.float()) ** 2).mean()
        self.log("loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val", (self.w - batch.float()).abs().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Events(Logger, Callback):
    """In order: every metric logged (``("log", step, name, value)``), once per step as the stages'
    logger keeps it, and every checkpoint written (``("ckpt", global_step)``)."""

    def __init__(self):
        super().__init__()
        self.events: list[tuple] = []

    name, version = "events", 0

    def log_metrics(self, metrics, step=None):
        seen = {e[1:3] for e in self.events if e[0] == "log"}
        self.events += [("log", step, k, round(float(v), 6)) for k, v in sorted(metrics.items())
                        if k != "epoch" and (step, k) not in seen]

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.events.append(("ckpt", trainer.global_step))

    def logged(self, from_step: int = 0) -> list[tuple]:
        return [e for e in self.events if e[0] == "log" and e[1] >= from_step]


SAMPLERS = {
    "shuffled": lambda: ShuffledBatchSampler(ROWS, 2, seed=3),
    "bucketed": lambda: BucketBatchSampler(list(range(ROWS, 0, -1)), 2, bucket_factor=2, seed=3),
}


def fit(sampler_name: str, ckpt_dir, resume: str | None = None) -> tuple[list[tuple[int, list[int], float]], Events]:
    """(per step: the rows and a random draw; the logged metrics and checkpoints) of a run with the
    stages' checkpoint callback, writing a checkpoint at every step and validating every 2nd."""
    L.seed_everything(0, verbose=False)
    module, events = Recorder(), Events()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=STEPS, max_epochs=-1, val_check_interval=2,
                        check_val_every_n_epoch=None, num_sanity_val_steps=0, logger=events, log_every_n_steps=1,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                        callbacks=[RandomStates(), events,
                                   StepCheckpoint(dirpath=ckpt_dir, filename="{step}", every_n_train_steps=1,
                                                  save_top_k=-1, save_on_train_epoch_end=False)])
    rows = torch.arange(ROWS)
    trainer.fit(module, ResumableLoader(rows, SAMPLERS[sampler_name](), None), eval_loader(rows, 2, None),
                ckpt_path=resume)
    return module.seen, events


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_run_resumed_from_any_checkpoint_continues_as_the_uninterrupted_run(sampler, tmp_path):
    full, events = fit(sampler, tmp_path / "full")
    assert [step for step, _, _ in full] == list(range(STEPS))
    assert len({tuple(rows) for _, rows, _ in full}) > 3, "the epochs are shuffled differently"
    # the metrics of the step that reaches global step k are logged at step k - 1 (Lightning's
    # logging step counts the batches before): all of them, training and validation, before
    # checkpoint k is written, so a kill right after it loses no point (Lightning hands the training
    # metrics over again after the checkpoint; the stages' logger keeps one value per step)
    for i, event in enumerate(events.events):
        if event[0] == "ckpt":
            late = [e for e in events.events[i:] if e[0] == "log" and e[1] < event[1]]
            assert not late, f"logged after checkpoint {event[1]}: {late}"
            assert ("log", event[1] - 1, "loss") in {e[:3] for e in events.events[:i]}, f"step {event[1]}'s loss"
    assert {e[2] for e in events.logged()} == {"loss", "val"}
    for k in range(1, STEPS):
        resumed, resumed_events = fit(sampler, tmp_path / f"from{k}", resume=str(tmp_path / "full" / f"step={k}.ckpt"))
        assert resumed == full[k:], f"resumed after step {k}"
        assert resumed_events.logged() == events.logged(from_step=k), f"metrics resumed after step {k}"


def test_a_sampler_restored_from_its_state_goes_on_where_it_stopped():
    a = ShuffledBatchSampler(10, 3, seed=1)
    it = iter(a)
    first = [next(it) for _ in range(2)]
    assert a.state_dict() == {"epoch": 0, "drawn": 2}
    b = ShuffledBatchSampler(10, 3, seed=1)
    b.load_state_dict(a.state_dict())
    rest = list(b)
    assert rest == list(it) and len(first + rest) == 3
    assert b.state_dict() == {"epoch": 1, "drawn": 0}, "the last batch drawn ends the epoch"
    assert list(b) == a.epoch_batches(1) != a.epoch_batches(0)
