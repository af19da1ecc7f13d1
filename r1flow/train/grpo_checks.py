"""Checks that run while a GRPO stage trains (Lightning callbacks): held-out pass@1 on a subset,
the general prompts' scores in all-scenario RL, and tables of sampled completions."""

from __future__ import annotations

import contextlib

import torch
from lightning.pytorch.callbacks import Callback

from r1flow.sampling.evaluation import evaluate_split
from r1flow.sampling.rewards import get_reward
from r1flow.sampling.rollout import HFGenerator, SamplingParams
from r1flow.sampling.verify import is_correct
from r1flow.train.grpo import GRPOModule
from r1flow.train.sharding import unsharded


@contextlib.contextmanager
def check_sampler(module: GRPOModule, k: int, max_new_tokens: int, seed: int):
    """A sampler for checks during training: the eval spec's T and top-p, and the same sampling
    noise at every check (the training RNG is restored afterwards)."""
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield (HFGenerator(module.model, module.tok, prompts_per_batch=128, progress=False),
               SamplingParams(n=k, temperature=0.6, top_p=0.95, max_new_tokens=max_new_tokens))
    finally:
        torch.set_rng_state(state)


class ValidationPassAt1(Callback):
    """pass@1 on fixed validation prompts every ``every`` steps (and before the first step): the
    in-training check (held-out prompts are read by the evaluate stage only)."""

    def __init__(self, items, prompts, k: int, max_new_tokens: int, every: int, run):
        self.items, self.prompts, self.k, self.every, self.run = items, prompts, k, every, run
        self.max_new_tokens = max_new_tokens

    def _evaluate(self, trainer, module: GRPOModule) -> None:
        with unsharded(module.model):  # every rank gathers a sharded policy; rank 0 samples
            if not trainer.is_global_zero:
                return
            with check_sampler(module, self.k, self.max_new_tokens, seed=1234) as (gen, params):
                m, _ = evaluate_split(gen, self.items, self.prompts, params, desc="validation check")
        step = trainer.global_step
        metrics = {"val/pass@1": m["pass@1"], "val/format_rate": m["format_rate"],
                   "val/mean_length": m["mean_length"], "val/pass@k": m["pass@k"]}
        self.run.log_metrics(metrics, step=step)
        module.history.append({"step": step, **metrics})

    def on_train_start(self, trainer, module):
        if trainer.global_step == 0:
            self._evaluate(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.every and (step % self.every == 0 or step == trainer.max_steps):
            self._evaluate(trainer, module)


class GeneralScore(Callback):
    """General prompts of all-scenario RL before the first step, when the general phase starts and
    at the end: exact match (the verifier, where one exists; refusal without a leak for requests
    for a secret) and each reward model's mean score on k samples per validation prompt."""

    def __init__(self, items, prompts, scorers: dict, k: int, max_new_tokens: int, phase_start: int, run):
        self.items, self.prompts, self.scorers, self.k, self.run = items, prompts, scorers, k, run
        self.max_new_tokens, self.phase_start = max_new_tokens, phase_start

    def _evaluate(self, trainer, module: GRPOModule) -> None:
        with unsharded(module.model):  # every rank gathers a sharded policy; rank 0 samples
            if not trainer.is_global_zero:
                return
            with check_sampler(module, self.k, self.max_new_tokens, seed=4321) as (gen, params):
                groups = gen.generate(self.prompts, params, desc="general check")
        items = [it for it, grp in zip(self.items, groups) for _ in grp]
        texts = [c.text for grp in groups for c in grp]
        correct = [is_correct(it, t) for it, t in zip(items, texts)]
        metrics = {"val/general/exact": sum(correct) / len(correct)}
        for kind in sorted({it.get("kind", "general") for it in items}):
            rows = [ok for it, ok in zip(items, correct) if it.get("kind", "general") == kind]
            metrics[f"val/general/{kind}/exact"] = sum(rows) / len(rows)
        for name, scorer in self.scorers.items():  # each reward model's reward, logged if not trained on
            scores = get_reward(name)(texts, items, scorer=scorer)
            metrics[f"val/general/{name}"] = sum(scores) / len(scores)
        self.run.log_metrics(metrics, step=trainer.global_step)
        module.history.append({"step": trainer.global_step, **metrics})

    def on_train_start(self, trainer, module):
        if trainer.global_step == 0:
            self._evaluate(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if 0 < trainer.global_step == self.phase_start < trainer.max_steps:
            self._evaluate(trainer, module)

    def on_train_end(self, trainer, module):
        self._evaluate(trainer, module)


class SampleTable(Callback):
    """A table of the rollout's completions every ``every`` steps, as an MLflow artifact."""

    def __init__(self, every: int, run, rows: int = 64):
        self.every, self.run, self.rows = every, run, rows

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        if trainer.is_global_zero and self.every and (step % self.every == 1 or self.every == 1):
            self.run.log_table(module.last_samples[: self.rows], f"samples/step_{step:05d}.json")
