"""Supervised language-model training: one LightningModule for pretraining, cold-start SFT, general
SFT and distillation.

The module knows nothing of the data: batches carry ``labels`` with -100 where no loss is taken
(the prompt tokens in SFT, padding everywhere). Pretraining feeds packed blocks of a token stream;
SFT feeds (prompt, response) rows padded within length buckets, so a batch wastes few pad tokens.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from r1flow.config.training import OptimConfig
from r1flow.train.sharding import ShardedModule

IGNORE = -100


# ----------------------------------------------------------------------------------- the module
def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def adamw_with_schedule(module: torch.nn.Module, optim: OptimConfig, total_steps: int):
    """AdamW (no decay on biases and norms) + per-step warm-up/cosine schedule, Lightning's form."""
    decay, no_decay = [], []
    for _, p in module.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=optim.lr,
        betas=tuple(optim.betas),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, optim.warmup_steps, total_steps, optim.min_lr_ratio)
    )
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class CausalLMModule(ShardedModule):
    """Next-token cross-entropy on the positions whose label is not -100."""

    def __init__(self, model, optim: OptimConfig, total_steps: int):
        super().__init__()
        self.model = model.train()  # from_pretrained returns eval mode
        self.optim = optim
        self.total_steps = total_steps
        self._t_last: float | None = None

    def forward(self, batch):
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])

    def training_step(self, batch, batch_idx):
        if self.trainer.world_size > 1:
            # the mean over the global batch's tokens, as one process computes it: each rank sums its
            # token losses and divides by the global count / W (DDP then averages over the W ranks)
            count = (batch["labels"][:, 1:] != IGNORE).sum()
            count = self.trainer.strategy.reduce(count.float(), reduce_op="sum")
            loss = self.model(**batch, num_items_in_batch=count / self.trainer.world_size).loss
        else:
            loss = self(batch).loss
        now = time.perf_counter()
        tokens = int(batch["attention_mask"].sum())
        metrics = {"train/loss": loss.detach(), "train/tokens": float(tokens)}
        if self._t_last is not None:
            metrics["train/tokens_per_s"] = tokens / max(1e-9, now - self._t_last)
        self._t_last = now
        self.log_dict(metrics, prog_bar=False, on_step=True, on_epoch=False, sync_dist=self.trainer.world_size > 1)
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self(batch).loss
        self.log("val/loss", loss, prog_bar=True, on_epoch=True, batch_size=batch["input_ids"].shape[0],
                 sync_dist=self.trainer.world_size > 1)
        self._t_last = None  # validation time is not training throughput

    def configure_optimizers(self):
        return adamw_with_schedule(self.model, self.optim, self.total_steps)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        opt = self.optimizers()
        self.log("train/lr", opt.param_groups[0]["lr"], on_step=True, on_epoch=False)


# ----------------------------------------------------------------------------------- pretraining data
class PackedBlocks(Dataset):
    """Fixed-length blocks of one token stream (documents joined by EOS); loss on every token."""

    def __init__(self, token_stream: Sequence[int], seq_len: int):
        n = len(token_stream) // seq_len
        if n == 0:
            raise ValueError(f"token stream of {len(token_stream)} tokens is shorter than one block of {seq_len}")
        self.data = torch.tensor(token_stream[: n * seq_len], dtype=torch.long).view(n, seq_len)

    def __len__(self):
        return self.data.shape[0]

    def __getitem__(self, i):
        ids = self.data[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def pack_documents(tokenizer, docs: Sequence[str]) -> list[int]:
    stream: list[int] = []
    for ids in tokenizer(list(docs), add_special_tokens=False)["input_ids"]:
        stream += ids + [tokenizer.eos_token_id]
    return stream


# ----------------------------------------------------------------------------------- SFT data
class PromptResponseDataset(Dataset):
    """Rows of (prompt, response) text tokenised once; labels mask the prompt."""

    def __init__(self, tokenizer, rows: Sequence[dict], max_length: int):
        prompts = tokenizer([r["prompt"] for r in rows], add_special_tokens=False)["input_ids"]
        responses = tokenizer([r["response"] for r in rows], add_special_tokens=False)["input_ids"]
        self.examples = []
        for p, r in zip(prompts, responses):
            ids = (p + r)[:max_length]
            labels = ([IGNORE] * len(p) + r)[:max_length]
            if any(label != IGNORE for label in labels):
                self.examples.append((ids, labels))
        if not self.examples:
            raise ValueError("no SFT example keeps a response token within max_length")

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return self.examples[i]

    def lengths(self) -> list[int]:
        return [len(ids) for ids, _ in self.examples]


def data_parallel() -> tuple[int, int]:
    """(rank, world size) of the process group, (0, 1) outside one. Read when a sampler iterates:
    Lightning starts the group inside ``fit``, after the loaders were built."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_share(batch: list[int], rank: int, world: int) -> list[int]:
    """This rank's contiguous part of one global batch. The trainer's batch size is global: W
    processes with b/W rows each take the optimizer step 1 process takes with b."""
    if len(batch) % world:
        raise ValueError(f"config error: a global batch of {len(batch)} rows does not split over {world} "
                         f"processes; make the batch size a multiple of trainer.devices × trainer.num_nodes")
    share = len(batch) // world
    return batch[rank * share : (rank + 1) * share]


class EpochBatchSampler(Sampler[list[int]]):
    """Global batches drawn afresh each epoch from ``seed`` and the epoch number alone, each process
    taking its share (``rank_share``), so every rank computes the same batches without
    communication. It is resumable: ``state_dict`` holds the epoch and how many of its batches were
    drawn, and after ``load_state_dict`` the next iteration skips those. Lightning draws from a
    loader of known length exactly the batches it trains on (it looks ahead only when the length is
    unknown), so a checkpoint's state is the position of training. Subclasses say which batches an
    epoch has (``epoch_batches``)."""

    def __init__(self, n: int, batch_size: int, seed: int, drop_last: bool):
        self.n, self.batch_size, self.seed, self.drop_last = n, batch_size, seed, drop_last
        self.epoch, self.drawn = 0, 0

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.drawn = epoch, 0

    def global_batches(self, epoch: int) -> list[list[int]]:
        batches = self.epoch_batches(epoch)
        if data_parallel()[1] > 1:  # a short global batch (an epoch's remainder) is dropped, not split unevenly
            batches = [b for b in batches if len(b) == self.batch_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        epoch, skip = self.epoch, self.drawn
        rank, world = data_parallel()
        batches = self.global_batches(epoch)
        for i in range(skip, len(batches)):
            # Lightning stops at the loader's length without asking for more, so the epoch ends
            # with its last batch drawn: from then on the position is the next epoch's start
            self.epoch, self.drawn = (epoch + 1, 0) if i == len(batches) - 1 else (epoch, i + 1)
            yield rank_share(batches[i], rank, world)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.drawn = int(state["epoch"]), int(state["drawn"])

    def __len__(self):
        if self.drop_last or data_parallel()[1] > 1:
            return self.n // self.batch_size
        return math.ceil(self.n / self.batch_size)


class BucketBatchSampler(EpochBatchSampler):
    """Shuffled global batches of similar length (sorted within windows of ``bucket_factor``
    batches), so a padded batch wastes few tokens."""

    def __init__(self, lengths: Sequence[int], batch_size: int, bucket_factor: int, seed: int, shuffle: bool = True):
        super().__init__(len(lengths), batch_size, seed, drop_last=False)
        self.lengths = list(lengths)
        self.window = batch_size * max(1, bucket_factor)
        self.shuffle = shuffle

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed + epoch)
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        batches = []
        for start in range(0, len(order), self.window):
            window = sorted(order[start : start + self.window], key=self.lengths.__getitem__)
            batches += [window[i : i + self.batch_size] for i in range(0, len(window), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches


class ShuffledBatchSampler(EpochBatchSampler):
    """``DataLoader(shuffle=True, drop_last=True)``'s batches, made global and resumable: each epoch
    a permutation drawn from its own generator (seeded by ``seed`` and the epoch, never torch's
    global one), cut into full batches."""

    def __init__(self, n: int, batch_size: int, seed: int):
        super().__init__(n, batch_size, seed, drop_last=True)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
        return [order[s : s + self.batch_size] for s in range(0, self.n // self.batch_size * self.batch_size,
                                                               self.batch_size)]


class ResumableLoader(DataLoader):
    """A single-process DataLoader over an ``EpochBatchSampler`` whose position Lightning saves in
    every checkpoint and restores on resume (Lightning calls ``state_dict``/``load_state_dict`` of a
    train loader that has them). Starting an iteration draws its seed from the loader's own
    generator, not torch's global one, so validation passes leave training's random draws alone."""

    def __init__(self, dataset: Dataset, batch_sampler: EpochBatchSampler, collate_fn):
        super().__init__(dataset, batch_sampler=batch_sampler, collate_fn=collate_fn, num_workers=0,
                         generator=torch.Generator().manual_seed(batch_sampler.seed))

    def state_dict(self) -> dict:
        return self.batch_sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.load_state_dict(state)


def eval_loader(dataset: Dataset, batch_size: int, collate_fn) -> DataLoader:
    """An in-order loader for validation; like ``ResumableLoader`` it leaves torch's generator alone."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn, num_workers=0,
                      generator=torch.Generator())


def pad_collate(pad_id: int):
    """Right-pad (ids, labels) pairs into a batch."""

    def collate(examples):
        width = max(len(ids) for ids, _ in examples)
        input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, (ids, lab) in enumerate(examples):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(lab)] = torch.tensor(lab)
            mask[i, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}

    return collate
