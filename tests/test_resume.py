"""Exact resume of the training loop itself, in process: a run resumed from *any* of its
checkpoints (mid-epoch, on an epoch's last batch, right after a validation pass) trains on the
batches, and draws the random numbers, that the uninterrupted run did from there on. The stages'
kill-and-resume tests (tests/test_distributed.py, tests/test_grpo_stage.py) build on this."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from r1flow.train.sft import BucketBatchSampler, ResumableLoader, ShuffledBatchSampler, eval_loader
from r1flow.train.trainer import RandomStates

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
        return ((self.w - batch.float()) ** 2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val", (self.w - batch.float()).abs().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


SAMPLERS = {
    "shuffled": lambda: ShuffledBatchSampler(ROWS, 2, seed=3),
    "bucketed": lambda: BucketBatchSampler(list(range(ROWS, 0, -1)), 2, bucket_factor=2, seed=3),
}


def fit(sampler_name: str, ckpt_dir, resume: str | None = None) -> list[tuple[int, list[int], float]]:
    L.seed_everything(0, verbose=False)
    module = Recorder()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=STEPS, max_epochs=-1, val_check_interval=2,
                        check_val_every_n_epoch=None, num_sanity_val_steps=0, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                        callbacks=[RandomStates(), ModelCheckpoint(dirpath=ckpt_dir, filename="{step}",
                                                                   every_n_train_steps=1, save_top_k=-1)])
    rows = torch.arange(ROWS)
    trainer.fit(module, ResumableLoader(rows, SAMPLERS[sampler_name](), None), eval_loader(rows, 2, None),
                ckpt_path=resume)
    return module.seen


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_run_resumed_from_any_checkpoint_continues_as_the_uninterrupted_run(sampler, tmp_path):
    full = fit(sampler, tmp_path / "full")
    assert [step for step, _, _ in full] == list(range(STEPS))
    assert len({tuple(rows) for _, rows, _ in full}) > 3, "the epochs are shuffled differently"
    for k in range(1, STEPS):
        resumed = fit(sampler, tmp_path / f"from{k}", resume=str(tmp_path / "full" / f"step={k}.ckpt"))
        assert resumed == full[k:], f"resumed after step {k}"


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
