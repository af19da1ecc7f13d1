"""Where a step's time goes: a GRPO step (ours and TRL's), an SFT step and an evaluation pass, in parts.

    .venv/bin/python bench/step_profile.py [--grpo-steps 6] [--sft-steps 60] [--eval-prompts 64] [--no-trl]

The code measured is the stages' own (GRPOModule, CausalLMModule under build_trainer, the evaluate
stage's evaluate_split) and TRL's GRPOTrainer on the same rollout (its own methods wrapped), on the
tiny model and the settings of bench/grpo_vs_trl.py and bench/train_throughput.py. Each part is
timed by wrapping the function that does it; "other" is the rest of the step (Lightning's or the
Trainer's loop and hooks, gradient clipping, logging, zero_grad, the LR scheduler, data loading).
Prints seconds per step and the share of each part. Run it alone: two jobs on 2 cores halve each other.
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch
from grpo_vs_trl import add_rollout_args, prompt_of, setup, trl_trainer
from lightning.pytorch.callbacks import Callback


class Parts:
    """Seconds spent in each named part, exclusive of the parts timed inside it (Lightning's
    optimizer step runs the forward and backward passes in its closure); ``wrap`` times a callable,
    not counted when called inside part ``only_outside`` (the log-probs of the reference pass)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.open: list[list] = []  # [name, seconds of the parts inside it]

    def wrap(self, name: str, fn, only_outside: str | None = None):
        def timed(*args, **kwargs):
            if any(part[0] == only_outside for part in self.open):
                return fn(*args, **kwargs)
            self.open.append([name, 0.0])
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                _, inner = self.open.pop()
                self.seconds[name] += elapsed - inner
                if self.open:
                    self.open[-1][1] += elapsed
        return timed


class StepClock(Callback):
    """Wall time of the timed steps (after ``warmup``), from batch start to batch end."""

    def __init__(self, parts: Parts, warmup: int):
        self.parts, self.warmup, self.total, self.steps = parts, warmup, 0.0, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.parts.seconds.clear()  # the parts of the warm-up steps are not counted
        self.t = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step > self.warmup:
            self.total += time.perf_counter() - self.t
            self.steps += 1


@contextmanager
def patched(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def table(title: str, parts: dict[str, float], total: float, steps: int,
          other: str = "other (Lightning's loop and hooks, clipping, logging, data)") -> None:
    print(f"\n{title}: {total / steps:.3f} s per step ({steps} steps)")
    print("| part | s per step | share |")
    print("|---|---|---|")
    for name, sec in [*parts.items(), (other, total - sum(parts.values()))]:
        print(f"| {name} | {sec / steps:.3f} | {100 * sec / total:.1f} % |")


def profile_grpo(args) -> None:
    import lightning as L
    from torch.utils.data import DataLoader

    import r1flow.train.grpo as grpo
    from r1flow.sampling.rollout import HFGenerator

    args.experiment = "tiny"
    cfg, items, tok, model = setup(args)
    g = cfg.reasoning_rl
    g.generation_batch_size = g.mini_batch_size = args.prompts * args.group
    g.group_size, g.mu, g.beta, g.max_new_tokens = args.group, 1, args.beta, args.max_new_tokens
    g.temperature, g.rewards = 1.0, {"accuracy": 1.0}
    module = grpo.GRPOModule(model, tok, g, items, [prompt_of(tok, args, it["question"]) for it in items],
                             HFGenerator(model, tok, progress=False))
    p = Parts()
    module._sample_groups = p.wrap("generation", module._sample_groups)
    module._score = p.wrap("reward scoring", module._score)
    module._tensors = p.wrap("tensors (tokenise, pad)", module._tensors)
    module._cached_logprobs = p.wrap("reference log-probs", module._cached_logprobs)
    module._record = p.wrap("rollout bookkeeping (stats, samples)", module._record)
    module.manual_backward = p.wrap("backward", module.manual_backward)
    clock = StepClock(p, args.warmup)
    trainer = L.Trainer(accelerator="cpu", max_steps=args.grpo_steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock])
    forward = p.wrap("policy forward (log-probs)", grpo.completion_logprobs, only_outside="reference log-probs")
    with patched(grpo, "completion_logprobs", forward), \
            patched(grpo, "per_token_loss", p.wrap("loss", grpo.per_token_loss)), \
            patched(torch.optim.AdamW, "step", p.wrap("optimizer", torch.optim.AdamW.step)):
        trainer.fit(module, DataLoader(range(args.grpo_steps), batch_size=1))
    table(f"GRPO step ({args.prompts} prompts x G={args.group}, {args.template} template, "
          f"<= {args.max_new_tokens} new tokens, beta={args.beta})", dict(p.seconds), clock.total, clock.steps)


def profile_trl(args) -> None:
    """TRL's GRPOTrainer on the same rollout (bench/grpo_vs_trl.py's settings), its parts timed by
    wrapping its own methods: generation, reward scoring, the log-prob passes outside the loss (the
    reference model's; π_old is the policy's own, detached, at one iteration per rollout), the loss
    forward, the backward and the optimizer."""
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    p = Parts()

    class Clock(TrainerCallback):
        def __init__(self):
            self.total, self.steps = 0.0, 0

        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == args.warmup:
                p.seconds.clear()
            self.t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            if state.global_step > args.warmup:
                self.total += time.perf_counter() - self.t
                self.steps += 1

    clock = Clock()
    args.steps = args.grpo_steps
    loss = "policy forward (log-probs) and loss"
    with trl_trainer(args, callbacks=[clock]) as trainer, \
            patched(GRPOTrainer, "_generate_single_turn", p.wrap("generation", GRPOTrainer._generate_single_turn)), \
            patched(GRPOTrainer, "_calculate_rewards", p.wrap("reward scoring", GRPOTrainer._calculate_rewards)), \
            patched(GRPOTrainer, "_get_per_token_logps_and_entropies",
                    p.wrap("reference log-probs", GRPOTrainer._get_per_token_logps_and_entropies,
                           only_outside=loss)), \
            patched(GRPOTrainer, "compute_loss", p.wrap(loss, GRPOTrainer.compute_loss)), \
            patched(torch.optim.AdamW, "step", p.wrap("optimizer", torch.optim.AdamW.step)):
        trainer.accelerator.backward = p.wrap("backward", trainer.accelerator.backward)
        trainer.train()
    table("TRL GRPOTrainer step (the same rollout, transformers' sdpa)", dict(p.seconds), clock.total, clock.steps,
          other="other (Trainer's loop, tokenising, padding, clipping, logging, data)")


def profile_sft(args) -> None:
    from torch.utils.data import DataLoader

    from r1flow.config import compose
    from r1flow.harness.models import build_model
    from r1flow.runners.sft import render_sft_rows
    from r1flow.sampling.prompts import R1_ZERO_TEMPLATE
    from r1flow.train.sft import BucketBatchSampler, CausalLMModule, PromptResponseDataset, pad_collate
    from r1flow.train.trainer import build_trainer
    from r1flow.world.corpus import cold_start_rows, make_split
    from r1flow.world.tokenizer import build_tokenizer

    cfg = compose(["experiment=tiny"])
    scfg = cfg.cold_start_sft
    items = make_split(cfg.data, "train", 1000, 4)
    tok = build_tokenizer([it["question"] for it in items] + [R1_ZERO_TEMPLATE])
    ds = PromptResponseDataset(tok, render_sft_rows(tok, cold_start_rows(items)), scfg.max_length)
    loader = DataLoader(ds, batch_sampler=BucketBatchSampler(ds.lengths(), args.batch_size, scfg.bucket_factor, seed=0),
                        collate_fn=pad_collate(tok.pad_token_id))
    torch.manual_seed(0)
    module = CausalLMModule(build_model(cfg.model, tok), scfg.optim, args.sft_steps)
    p = Parts()
    module.model.forward = p.wrap("forward (with the loss)", module.model.forward)
    module.backward = p.wrap("backward", module.backward)
    clock = StepClock(p, args.warmup)
    with tempfile.TemporaryDirectory() as tmp, \
            patched(torch.optim.AdamW, "step", p.wrap("optimizer (its own work)", torch.optim.AdamW.step)):
        tcfg = copy.deepcopy(cfg.trainer)
        tcfg.enable_progress_bar = False
        trainer = build_trainer(tcfg, Path(tmp), logger=False, max_steps=args.sft_steps,
                                grad_clip=scfg.optim.grad_clip, val_every=None, ckpt_every=0, callbacks=[clock])
        trainer.fit(module, loader)
    table(f"SFT step (batch {args.batch_size}, cold-start rows)", dict(p.seconds), clock.total, clock.steps)


def profile_evaluation(args) -> None:
    import r1flow.sampling.evaluation as evaluation
    from r1flow.sampling.prompts import item_prompt
    from r1flow.sampling.rollout import HFGenerator, SamplingParams

    args.experiment = "tiny"
    cfg, items, tok, model = setup(args)
    items = items[: args.eval_prompts]
    prompts = [item_prompt(tok, it, "chat") for it in items]
    gen = HFGenerator(model.eval(), tok, progress=False)
    e = cfg.evaluate
    params = SamplingParams(n=e.k, temperature=e.temperature, top_p=e.top_p, max_new_tokens=e.max_new_tokens)
    p = Parts()
    gen.generate = p.wrap("generation", gen.generate)
    t0 = time.perf_counter()
    with patched(evaluation, "grade", p.wrap("grading (verifier)", evaluation.grade)):
        evaluation.evaluate_split(gen, items, prompts, params)
    total = time.perf_counter() - t0
    table(f"evaluation pass ({len(items)} prompts x k={e.k}, <= {e.max_new_tokens} new tokens)", dict(p.seconds),
          total, 1, other="other (prompts, aggregation, sample rows)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grpo-steps", type=int, default=6)
    ap.add_argument("--sft-steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=1)
    add_rollout_args(ap)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--eval-prompts", type=int, default=64)
    ap.add_argument("--no-trl", action="store_true", help="skip TRL's GRPO step (TRL is the bench extra)")
    args = ap.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    print(f"torch threads {torch.get_num_threads()}")
    profile_grpo(args)
    if not args.no_trl:
        profile_trl(args)
    profile_sft(args)
    profile_evaluation(args)


if __name__ == "__main__":
    main()
