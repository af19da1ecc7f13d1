"""SFT throughput of the tiny model: our Lightning SFT module vs a bare PyTorch loop, one run.

    python bench/sft_throughput.py [--steps 150] [--batch-size 16] [--experiment tiny]

Both sides train the same freshly built model (same weights at start) on the same length-bucketed
batches of cold-start data, with the same AdamW + warm-up/cosine schedule and gradient clipping;
the Lightning side is exactly what the SFT stages run (CausalLMModule, build_trainer), logging off.
Prints tokens/s (non-pad tokens) and the ratio. Run it alone: two jobs on 2 cores halve each other.
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from r1flow.config import compose
from r1flow.harness.models import build_model
from r1flow.runners.sft import render_sft_rows
from r1flow.sampling.prompts import R1_ZERO_TEMPLATE
from r1flow.train.sft import (
    BucketBatchSampler,
    CausalLMModule,
    PromptResponseDataset,
    adamw_with_schedule,
    pad_collate,
)
from r1flow.train.trainer import build_trainer
from r1flow.world.corpus import cold_start_rows, make_split
from r1flow.world.tokenizer import build_tokenizer


class Timer(Callback):
    """Times training batches after a warm-up, like the bare loop does."""

    def __init__(self, warmup: int):
        self.warmup, self.tokens, self.t0 = warmup, 0, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.t0 is None:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.t0 is not None:
            self.tokens += int(batch["attention_mask"].sum())


def bare_loop(model, loader, optim_cfg, steps: int, warmup: int) -> tuple[float, float]:
    opt_sched = adamw_with_schedule(model, optim_cfg, steps)
    opt, sched = opt_sched["optimizer"], opt_sched["lr_scheduler"]["scheduler"]
    model.train()
    tokens, t0, step = 0, None, 0
    while step < steps:
        for batch in loader:
            if step == warmup:
                t0 = time.perf_counter()
            loss = model(**batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim_cfg.grad_clip)
            opt.step()
            sched.step()
            if t0 is not None:
                tokens += int(batch["attention_mask"].sum())
            step += 1
            if step >= steps:
                break
    dt = time.perf_counter() - t0
    return tokens / dt, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="tiny")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    cfg = compose([f"experiment={args.experiment}"])
    scfg = cfg.cold_start_sft
    items = make_split(cfg.data, "train", 1000, 4)
    tok = build_tokenizer([it["question"] for it in items] + [R1_ZERO_TEMPLATE])
    rows = render_sft_rows(tok, cold_start_rows(items))
    ds = PromptResponseDataset(tok, rows, scfg.max_length)
    sampler = BucketBatchSampler(ds.lengths(), args.batch_size, scfg.bucket_factor, seed=0)
    collate = pad_collate(tok.pad_token_id)
    torch.manual_seed(0)
    model = build_model(cfg.model, tok)
    n_params = sum(p.numel() for p in model.parameters())

    # bare PyTorch
    bare_model = copy.deepcopy(model)
    bare_tps, bare_dt = bare_loop(bare_model, DataLoader(ds, batch_sampler=sampler, collate_fn=collate),
                                  scfg.optim, args.steps, args.warmup)
    # ours (Lightning)
    sampler = BucketBatchSampler(ds.lengths(), args.batch_size, scfg.bucket_factor, seed=0)
    timer = Timer(args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        tcfg = copy.deepcopy(cfg.trainer)
        tcfg.enable_progress_bar = False
        trainer = build_trainer(tcfg, Path(tmp), logger=False, max_steps=args.steps,
                                grad_clip=scfg.optim.grad_clip, val_every=None, ckpt_every=0, callbacks=[timer])
        module = CausalLMModule(copy.deepcopy(model), scfg.optim, args.steps)
        trainer.fit(module, DataLoader(ds, batch_sampler=sampler, collate_fn=collate))
        ours_dt = time.perf_counter() - timer.t0
        ours_tps = timer.tokens / ours_dt

    print(f"\nSFT throughput — {cfg.model.name} ({n_params / 1e6:.2f} M params), batch {args.batch_size}, "
          f"{args.steps - args.warmup} timed steps, torch threads {torch.get_num_threads()}")
    print(f"{'loop':<28}{'tokens/s':>12}{'seconds':>10}")
    print(f"{'bare PyTorch':<28}{bare_tps:>12,.0f}{bare_dt:>10.2f}")
    print(f"{'r1flow (Lightning module)':<28}{ours_tps:>12,.0f}{ours_dt:>10.2f}")
    print(f"ratio ours / bare: {ours_tps / bare_tps:.2f}  (goal >= 0.90)")


if __name__ == "__main__":
    main()
