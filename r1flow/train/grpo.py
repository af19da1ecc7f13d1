"""The GRPO LightningModule: R1-Zero, reasoning RL and all-scenario RL all train with it.

One Lightning step is one optimizer step (manual optimization). Every
``mu * generation_batch_size / mini_batch_size`` steps the module samples a rollout — G completions
for each of ``generation_batch_size / G`` prompts — scores it with the configured rewards, computes
group-relative advantages, and caches π_old's and the reference model's log-probs; the steps in
between consume that rollout mini-batch by mini-batch. With μ = 1 and one mini-batch π_old is the
current policy, so the ratio is exactly 1 and the clipped loss is 0 at every step while its
gradient is not: watch ``reward`` and ``kl``, not ``loss``.

Checkpoints carry the reference model, optimizer, step, RNG states, prompt cursor and the current
rollout, so a killed stage resumes where it stopped.
"""

from __future__ import annotations

import copy
import functools
import random
import time
from dataclasses import dataclass

import numpy as np
import torch

from r1flow.config.rl import GRPOConfig
from r1flow.sampling.rewards import REFLECTIVE, combined_rewards
from r1flow.sampling.rollout import Completion, SamplingParams
from r1flow.train.grpo_loss import (
    aggregate_loss,
    completion_logprobs,
    group_advantages,
    masked_mean,
    per_token_loss,
    zero_std_groups,
)
from r1flow.train.sft import adamw_with_schedule
from r1flow.train.sharding import ShardedModule, unsharded


@dataclass
class Rollout:
    """One generation batch, as tensors ready for the loss."""

    input_ids: torch.Tensor  # (B, P + C): left-padded prompts, right-padded completions
    attention_mask: torch.Tensor
    prompt_width: int
    completion_mask: torch.Tensor  # (B, C) tokens that enter the loss
    advantages: torch.Tensor  # (B,)
    old_logp: torch.Tensor | None  # (B, C) π_old, when it differs from the current policy
    ref_logp: torch.Tensor | None  # (B, C) reference model, when beta > 0
    total_active_tokens: float  # across ranks (the dapo normaliser)

    def slice(self, idx: slice) -> Rollout:
        take = lambda t: None if t is None else t[idx]  # noqa: E731
        return Rollout(self.input_ids[idx], self.attention_mask[idx], self.prompt_width,
                       self.completion_mask[idx], self.advantages[idx], take(self.old_logp),
                       take(self.ref_logp), self.total_active_tokens)

    def state(self) -> dict:
        return dict(self.__dict__)


def rollout_tensors(tok, prompts: list[str], flat: list[Completion], group_size: int, mask_truncated: bool):
    """(input_ids, attention_mask, prompt width, loss mask) of a rollout: the left-padded prompts, one
    row per completion (``flat`` holds each prompt's ``group_size`` completions in turn), then the
    right-padded completions; a truncated completion is masked out of the loss when ``mask_truncated``."""
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    enc = {k: v.repeat_interleave(group_size, dim=0) for k, v in enc.items()}  # one row per completion
    width = max(1, max(c.length for c in flat))
    comp = torch.full((len(flat), width), tok.pad_token_id, dtype=torch.long)
    comp_attn = torch.zeros((len(flat), width), dtype=torch.long)
    cmask = torch.zeros((len(flat), width), dtype=torch.float32)
    for i, c in enumerate(flat):
        comp[i, : c.length] = torch.tensor(c.token_ids, dtype=torch.long)
        comp_attn[i, : c.length] = 1
        if not (mask_truncated and c.truncated):
            cmask[i, : c.length] = 1.0
    return (torch.cat([enc["input_ids"], comp], dim=1), torch.cat([enc["attention_mask"], comp_attn], dim=1),
            enc["input_ids"].shape[1], cmask)


class GRPOModule(ShardedModule):
    def __init__(self, policy, tokenizer, gcfg: GRPOConfig, items: list[dict], prompts: list[str], generator,
                 seed: int = 0, general_items: list[dict] = (), general_prompts: list[str] = (),
                 scorers: dict | None = None):
        super().__init__()
        self.automatic_optimization = False
        self.model = policy.train()
        self.tok = tokenizer
        self.g = gcfg
        # reasoning prompts first, then the general prompts of all-scenario RL (scored by reward models)
        self.items, self.prompts = list(items) + list(general_items), list(prompts) + list(general_prompts)
        self.pools = {"reasoning": range(len(items)), "general": range(len(items), len(self.items))}
        self.scorers = dict(scorers or {})
        self.generator = generator
        self.seed = seed
        self.ref_model = None
        if gcfg.beta > 0:  # no reference model is held when beta = 0
            self.ref_model = copy.deepcopy(policy).eval().requires_grad_(False)
        self.n_mini = gcfg.generation_batch_size // gcfg.mini_batch_size
        self.steps_per_rollout = gcfg.mu * self.n_mini
        self.cursors = {"reasoning": 0, "general": 0}  # positions in the prompt streams
        self.rollout: Rollout | None = None
        self.rollout_stats: dict[str, float] = {}
        self.last_samples: list[dict] = []
        self.history: list[dict] = []  # per-step scalars, for plots

    def on_fit_start(self) -> None:
        """The reward models score on the policy's device (Lightning places only the policy and reference)."""
        for scorer in self.scorers.values():
            model = getattr(scorer, "model", None)  # a RewardScorer; a plain function scores where it likes
            if isinstance(model, torch.nn.Module):
                model.to(self.device)

    # ------------------------------------------------------------------ prompts
    def _next_prompts(self, n: int, pool: str = "reasoning") -> list[int]:
        """Indices of the next ``n`` prompts of a pool's per-epoch shuffled stream (deterministic)."""
        out = []
        while len(out) < n:
            epoch, pos = divmod(self.cursors[pool], len(self.pools[pool]))
            out.append(self._epoch_order(pool, epoch)[pos])
            self.cursors[pool] += 1
        return out

    @functools.lru_cache(maxsize=4)  # noqa: B019 (the module lives as long as the stage)
    def _epoch_order(self, pool: str, epoch: int) -> list[int]:
        order = list(self.pools[pool])
        random.Random(self.seed * 7919 + epoch + (104729 if pool == "general" else 0)).shuffle(order)
        return order

    def general_share(self) -> float:
        """Share of a rollout's prompts that are general ones at this step (all-scenario RL)."""
        g = self.g
        late = self.global_step >= self.trainer.max_steps - g.general_last_steps
        return g.general_prompt_frac if len(self.pools["general"]) and g.general_last_steps and late else 0.0

    # ------------------------------------------------------------------ rollout
    @torch.no_grad()
    def _sample_groups(self, n_prompts: int) -> tuple[list[int], list[list[Completion]]]:
        world, rank = self.trainer.world_size, self.trainer.global_rank
        n_general = round(n_prompts * self.general_share())
        idx = (self._next_prompts((n_prompts - n_general) * world)[rank::world]
               + self._next_prompts(n_general * world, "general")[rank::world])
        params = SamplingParams(n=self.g.group_size, temperature=self.g.temperature, top_p=self.g.top_p,
                                max_new_tokens=self.g.max_new_tokens)
        return idx, self.generator.generate([self.prompts[i] for i in idx], params, desc="rollout")

    def _score(self, idx: list[int], groups: list[list[Completion]]):
        """Rewards of every completion: rule rewards for reasoning prompts, ``general_rewards`` (reward
        models, format, ...) for general ones; ``parts`` holds each reward's values where it applies
        (a general prompt's under ``general/<name>``)."""
        flat = [c for grp in groups for c in grp]
        items = [self.items[i] for i in idx for _ in range(self.g.group_size)]
        total = [0.0] * len(flat)
        parts: dict[str, list[float]] = {}
        kwargs = {**{k: dict(v) for k, v in self.g.reward_kwargs.items()},
                  **{name: {"scorer": scorer} for name, scorer in self.scorers.items()}}
        for general in (False, True):
            rows = [i for i, it in enumerate(items) if (it.get("kind", "reasoning") != "reasoning") == general]
            if not rows:
                continue
            weights = dict(self.g.general_rewards if general else self.g.rewards)
            sub_total, sub_parts = combined_rewards(weights, kwargs, [flat[i].text for i in rows],
                                                    [items[i] for i in rows], [flat[i].length for i in rows],
                                                    [flat[i].truncated for i in rows])
            for i, t in zip(rows, sub_total):
                total[i] = t
            for name, vals in sub_parts.items():
                parts.setdefault(f"general/{name}" if general else name, []).extend(vals)
        return flat, items, torch.tensor(total, dtype=torch.float32), parts

    def _refill(self, idx: list[int], groups: list, rewards: torch.Tensor, n_prompts: int, stats: dict):
        """DAPO's dynamic sampling: keep the groups with a reward signal and refill the batch from the
        next prompts (at most ``max_refill_rounds`` rounds). Returns (idx, groups, extra sampling s),
        the original batch when no group has a signal."""
        G, zero = self.g.group_size, zero_std_groups(rewards, self.g.group_size)
        keep = [i for i in range(len(idx)) if not zero[i]]
        pool = {"idx": [idx[i] for i in keep], "groups": [groups[i] for i in keep]}
        rounds, t_gen = 0, 0.0
        while len(pool["idx"]) < n_prompts and rounds < self.g.max_refill_rounds:
            rounds += 1
            t1 = time.perf_counter()
            more_idx, more = self._sample_groups(n_prompts - len(pool["idx"]))
            t_gen += time.perf_counter() - t1
            _, _, r_more, _ = self._score(more_idx, more)
            z_more = zero_std_groups(r_more, G)
            pool["idx"] += [more_idx[i] for i in range(len(more_idx)) if not z_more[i]]
            pool["groups"] += [more[i] for i in range(len(more_idx)) if not z_more[i]]
        if pool["idx"]:  # else: keep the original batch (all groups flat; zero advantages)
            idx, groups = pool["idx"][:n_prompts], pool["groups"][:n_prompts]
        stats["dynamic_sampling/refill_rounds"] = float(rounds)
        stats["dynamic_sampling/groups"] = float(len(idx))
        return idx, groups, t_gen

    def _tensors(self, idx: list[int], flat: list[Completion]):
        """``rollout_tensors`` of the rollout on the policy's device, and its active tokens across ranks."""
        input_ids, attention_mask, width, cmask = rollout_tensors(self.tok, [self.prompts[i] for i in idx], flat,
                                                                  self.g.group_size, self.g.mask_truncated)
        input_ids, attention_mask, cmask = input_ids.to(self.device), attention_mask.to(self.device), cmask.to(self.device)
        active = cmask.sum()
        if self.trainer.world_size > 1:
            active = self.trainer.strategy.reduce(active, reduce_op="sum")
        total_active = float(active) / self.trainer.world_size  # DDP averages gradients over ranks
        return input_ids, attention_mask, width, cmask, total_active

    def _cached_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int):
        """The reference model's log-probs (when beta > 0) and pi_old's (when a rollout serves
        several steps), by mini-batch."""
        g, n = self.g, input_ids.shape[0]
        mb = g.mini_batch_size // self.trainer.world_size or n

        def logprobs_of(model) -> torch.Tensor:
            return torch.cat([
                completion_logprobs(model, input_ids[s : s + mb], attention_mask[s : s + mb], prompt_width,
                                    g.temperature, g.logprob_chunk_rows, group_size=self._sharing(mb),
                                    length_buckets=g.length_buckets)[0]
                for s in range(0, n, mb)
            ])

        ref_logp = logprobs_of(self.ref_model) if self.ref_model is not None else None
        old_logp = logprobs_of(self.model) if self.steps_per_rollout > 1 else None
        return ref_logp, old_logp

    def _sharing(self, rows: int) -> int:
        """The group size the log-prob passes share a prompt over: G when the passes' slices of ``rows``
        rows hold whole groups (they start at multiples of ``rows``), else 1 (one pass per row)."""
        G = self.g.group_size
        return G if self.g.shared_prompt_forward and rows % G == 0 else 1

    def _record(self, idx, items, flat, rewards, advantages, parts, stats: dict) -> None:
        """The rollout's metrics (logged with the step) and its samples (the tables)."""
        G = self.g.group_size
        lengths = torch.tensor([c.length for c in flat], dtype=torch.float32)
        n_tokens = float(lengths.sum())
        stats.update({
            "reward": rewards.mean().item(),
            "reward_std": rewards.view(-1, G).std(dim=1).mean().item(),
            "completions/mean_length": lengths.mean().item(),
            "completions/max_length": lengths.max().item(),
            "completions/clipped_ratio": float(np.mean([c.truncated for c in flat])),
            "completions/reflective_rate": float(np.mean([bool(REFLECTIVE.search(c.text)) for c in flat])),
            "throughput/gen_tokens_per_s": n_tokens / max(stats["timing/gen"], 1e-9),
            "rollout/completion_tokens": n_tokens,
        })
        for name, vals in parts.items():
            stats[f"rewards/{name}/mean"] = float(np.mean(vals))
        self.rollout_stats = stats
        prompts = [self.prompts[i] for i in idx for _ in range(G)]
        self.last_samples = [
            {"step": self.global_step, "id": it["id"], "prompt": p, "gold": it["answer"], "completion": c.text,
             "reward": float(r), "advantage": float(a), "length": c.length, "truncated": c.truncated}
            for it, p, c, r, a in zip(items, prompts, flat, rewards.tolist(), advantages.tolist())
        ]

    @torch.no_grad()
    def make_rollout(self) -> Rollout:
        """Sample, score and tensorise one rollout; cache the reference's and pi_old's log-probs."""
        g = self.g
        n_prompts = g.generation_batch_size // g.group_size // self.trainer.world_size
        t0 = time.perf_counter()
        with unsharded(self.model):  # FSDP2: whole for sampling (ranks refill for different numbers of rounds)
            idx, groups = self._sample_groups(n_prompts)
            t_gen = time.perf_counter() - t0
            flat, items, rewards, parts = self._score(idx, groups)
            stats = {"frac_reward_zero_std": zero_std_groups(rewards, g.group_size).float().mean().item(),
                     "general_prompt_share": self.general_share()}
            if g.dynamic_sampling:
                kept_idx, groups, t_more = self._refill(idx, groups, rewards, n_prompts, stats)
                t_gen += t_more
                if kept_idx is not idx:
                    idx = kept_idx
                    flat, items, rewards, parts = self._score(idx, groups)
        advantages = group_advantages(rewards, g.group_size, g.scale_rewards)
        input_ids, attention_mask, width, cmask, total_active = self._tensors(idx, flat)
        t1 = time.perf_counter()
        ref_logp, old_logp = self._cached_logprobs(input_ids, attention_mask, width)
        stats.update({"timing/gen": t_gen, "timing/ref": time.perf_counter() - t1})
        self._record(idx, items, flat, rewards, advantages, parts, stats)
        return Rollout(input_ids, attention_mask, width, cmask, advantages.to(self.device), old_logp, ref_logp,
                       total_active)

    # ------------------------------------------------------------------ update
    def training_step(self, batch, batch_idx):
        g = self.g
        step = self.global_step
        t_start = time.perf_counter()
        if step % self.steps_per_rollout == 0 or self.rollout is None:
            self.rollout = self.make_rollout()
        t_update = time.perf_counter()
        k = step % self.steps_per_rollout
        B = self.rollout.input_ids.shape[0]
        size = -(-B // self.n_mini)  # ceil: a dynamic-sampling batch may hold fewer groups
        mb = self.rollout.slice(slice((k % self.n_mini) * size, (k % self.n_mini + 1) * size))

        logp, entropy = completion_logprobs(self.model, mb.input_ids, mb.attention_mask, mb.prompt_width,
                                            g.temperature, g.logprob_chunk_rows, with_entropy=True,
                                            group_size=self._sharing(size), length_buckets=g.length_buckets)
        old = mb.old_logp if mb.old_logp is not None else logp.detach()
        tok_loss, st = per_token_loss(logp, old, mb.advantages, mb.ref_logp, g.beta, g.eps_low, g.eps_high)
        loss = aggregate_loss(tok_loss, mb.completion_mask, g.loss_type, g.max_new_tokens,
                              mb.total_active_tokens / self.n_mini)
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if g.optim.grad_clip:
            self.clip_gradients(opt, gradient_clip_val=g.optim.grad_clip, gradient_clip_algorithm="norm")
        opt.step()
        self.lr_schedulers().step()
        if g.ref_reset_every and self.ref_model is not None and (step + 1) % g.ref_reset_every == 0:
            self.ref_model.load_state_dict(self.model.state_dict())

        m = mb.completion_mask
        metrics = {
            "loss": loss.detach().item(),
            "entropy": masked_mean(entropy, m).item(),
            "clip_ratio/low_mean": masked_mean(st["clip_low"], m).item(),
            "clip_ratio/high_mean": masked_mean(st["clip_high"], m).item(),
            "kl": masked_mean(st["kl"], m).item() if "kl" in st else 0.0,
            "learning_rate": opt.param_groups[0]["lr"],
            "timing/update": time.perf_counter() - t_update,
            "timing/step": time.perf_counter() - t_start,
        }
        if k == 0:
            metrics.update(self.rollout_stats)
            total = self.rollout_stats["timing/gen"] + self.rollout_stats["timing/ref"] + metrics["timing/update"]
            metrics["tokens_per_s"] = self.rollout_stats["rollout/completion_tokens"] / max(total, 1e-9)
        self.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False, batch_size=size)
        self.log("rollout_reward", self.rollout_stats["reward"], prog_bar=True, logger=False, batch_size=size)
        self.history.append({"step": step + 1, **metrics})
        return loss.detach()

    def configure_optimizers(self):
        return adamw_with_schedule(self.model, self.g.optim, self.trainer.max_steps)

    # ------------------------------------------------------------------ exact resume
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["grpo_state"] = {
            "cursors": self.cursors,
            "history": self.history,
            "rollout": self.rollout.state() if self.rollout is not None else None,
            "rollout_stats": self.rollout_stats,
        }  # the random generators are r1flow/train/trainer.py's RandomStates

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        s = checkpoint.get("grpo_state")
        if not s:
            return
        self.cursors, self.history, self.rollout_stats = dict(s["cursors"]), s["history"], s["rollout_stats"]
        self.rollout = Rollout(**s["rollout"]) if s["rollout"] else None
