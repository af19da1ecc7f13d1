"""Training throughput of the supervised stages: our Lightning modules vs a bare PyTorch loop, one run.

    python bench/train_throughput.py [--steps 150] [--warmup 10] [--experiment tiny]

Three cases, each exactly what its stage runs (the module under ``build_trainer``, logging off)
against a bare loop of the same model (same weights at start), the same batches, the same AdamW
with its warm-up/cosine schedule and the same gradient clipping:

- SFT (``CausalLMModule``) on the length-bucketed batches of the cold-start data;
- the helpfulness reward model (``RewardModule``, pairwise Bradley–Terry) on the tiny world's
  preference pairs, a batch holding the chosen and then the rejected responses;
- the harmlessness reward model (pointwise: safe or unsafe) on its pairs.

The reward models start from a freshly built causal LM given transformers' scalar head, as the
stages do from the general-SFT model. Prints non-pad tokens per second and the ratio. Run it alone:
two jobs on 2 cores halve each other.
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
from r1flow.harness.models import build_model, load_model
from r1flow.runners.sft import render_sft_rows
from r1flow.sampling.prompts import R1_ZERO_TEMPLATE
from r1flow.train.reward_model import (
    PreferenceDataset,
    RewardModule,
    bradley_terry_loss,
    pointwise_loss,
    preference_collate,
)
from r1flow.train.sft import (
    BucketBatchSampler,
    CausalLMModule,
    PromptResponseDataset,
    ShuffledBatchSampler,
    adamw_with_schedule,
    pad_collate,
)
from r1flow.train.trainer import build_trainer
from r1flow.world.corpus import cold_start_rows, make_split
from r1flow.world.tokenizer import build_tokenizer
from stages.data import general_splits


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


def bare_loop(model, batches, loss_of, optim_cfg, steps: int, warmup: int) -> float:
    """Tokens per second of a plain training loop: ``loss_of(model, batch)``, backward, clipping,
    AdamW and the schedule."""
    opt_sched = adamw_with_schedule(model, optim_cfg, steps)
    opt, sched = opt_sched["optimizer"], opt_sched["lr_scheduler"]["scheduler"]
    model.train()
    tokens, t0, step = 0, None, 0
    while step < steps:
        for batch in batches():
            if step == warmup:
                t0 = time.perf_counter()
            loss = loss_of(model, batch)
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
    return tokens / (time.perf_counter() - t0)


def lightning_loop(cfg, module, batches, grad_clip: float, steps: int, warmup: int) -> float:
    """Tokens per second of the stage's own trainer on ``module``."""
    timer = Timer(warmup)
    with tempfile.TemporaryDirectory() as tmp:
        tcfg = copy.deepcopy(cfg.trainer)
        tcfg.enable_progress_bar = False
        trainer = build_trainer(tcfg, Path(tmp), logger=False, max_steps=steps, grad_clip=grad_clip, val_every=None,
                                ckpt_every=0, callbacks=[timer])
        trainer.fit(module, batches())
    return timer.tokens / (time.perf_counter() - timer.t0)


def scores(model, batch) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)


BARE_LOSS = {  # the case's loss, written out for the bare loop
    "sft": lambda model, batch: model(**batch).loss,
    "pairwise": lambda model, batch: bradley_terry_loss(*scores(model, batch).chunk(2)),
    "pointwise": lambda model, batch: pointwise_loss(scores(model, batch), batch["safe"]),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="tiny")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    cfg = compose([f"experiment={args.experiment}"])
    items = make_split(cfg.data, "train", 1000, 4)
    prefs = general_splits(cfg.data, {})
    tok = build_tokenizer([it["question"] for it in items] + [R1_ZERO_TEMPLATE]
                          + [r[k] for rows in prefs.values() for r in rows for k in ("prompt", "chosen", "rejected")])
    torch.manual_seed(0)
    lm = build_model(cfg.model, tok)
    n_params = sum(p.numel() for p in lm.parameters())
    results = []

    scfg = cfg.cold_start_sft
    sft = PromptResponseDataset(tok, render_sft_rows(tok, cold_start_rows(items)), scfg.max_length)

    def sft_batches():
        sampler = BucketBatchSampler(sft.lengths(), scfg.batch_size, scfg.bucket_factor, seed=0)
        return DataLoader(sft, batch_sampler=sampler, collate_fn=pad_collate(tok.pad_token_id))

    bare = bare_loop(copy.deepcopy(lm), sft_batches, BARE_LOSS["sft"], scfg.optim, args.steps, args.warmup)
    ours = lightning_loop(cfg, CausalLMModule(copy.deepcopy(lm), scfg.optim, args.steps), sft_batches,
                          scfg.optim.grad_clip, args.steps, args.warmup)
    results.append((f"cold-start SFT (batch {scfg.batch_size})", bare, ours))

    with tempfile.TemporaryDirectory() as tmp:
        lm.save_pretrained(tmp)
        for stage in ("helpfulness_rm", "harmlessness_rm"):
            rm = cfg[stage]
            rows = prefs[Path(rm.train_data).stem]
            data = PreferenceDataset(tok, rows, rm.mode, rm.target, rm.max_length)
            collate = preference_collate(tok.pad_token_id, rm.mode)

            def rm_batches(data=data, collate=collate, rm=rm):
                return DataLoader(data, batch_sampler=ShuffledBatchSampler(len(data), rm.batch_size, cfg.seed),
                                  collate_fn=collate)

            model = load_model(tmp, cfg.model, scalar_head=True, pad_token_id=tok.pad_token_id)
            bare = bare_loop(copy.deepcopy(model), rm_batches, BARE_LOSS[str(rm.mode)], rm.optim, args.steps,
                             args.warmup)
            ours = lightning_loop(cfg, RewardModule(copy.deepcopy(model), rm.mode, rm.optim, args.steps), rm_batches,
                                  rm.optim.grad_clip, args.steps, args.warmup)
            results.append((f"{stage} ({rm.mode}, batch {rm.batch_size} {'pairs' if rm.mode == 'pairwise' else 'texts'})",
                            bare, ours))

    print(f"\nTraining throughput: {cfg.model.name} ({n_params / 1e6:.2f} M params), {args.steps - args.warmup} "
          f"timed steps each, torch threads {torch.get_num_threads()}\n")
    print("| case | bare PyTorch tokens/s | r1flow (Lightning module) tokens/s | ours / bare (goal >= 0.90) |")
    print("|---|---|---|---|")
    for name, bare, ours in results:
        print(f"| {name} | {bare:,.0f} | {ours:,.0f} | {ours / bare:.2f} |")


if __name__ == "__main__":
    main()
