"""The GRPO LightningModule: R1-Zero, reasoning RL and all-scenario RL all train with it.

One Lightning step is one optimizer step (manual optimization). Every
``mu * generation_batch_size / mini_batch_size`` steps the module samples a rollout — G completions
for each of ``generation_batch_size / G`` prompts — scores it with the configured rewards, computes
group-relative advantages, and caches π_old's and the reference model's log-probs; the steps in
between consume that rollout mini-batch by mini-batch. With μ = 1 and one mini-batch π_old is the
current policy, so the ratio is exactly 1 and the clipped loss is 0 at every step while its
gradient is not: watch ``reward`` and ``kl``, not ``loss``.

With ``async_rollout`` the rollouts come from a sampler process one update behind the trainer
(r1flow/train/async_rollout.py), and π_old is the policy that sampled them.

Checkpoints carry the reference model, optimizer, step, RNG states, prompt cursor and the current
rollout (and the next one, sampled ahead), so a killed stage resumes where it stopped.
"""

from __future__ import annotations

import copy
import functools
import random
import time

import numpy as np
import torch

from r1flow.config.rl import GRPOConfig
from r1flow.sampling.rewards import REFLECTIVE, combined_rewards
from r1flow.sampling.rollout import Completion, SamplingParams
from r1flow.train.async_rollout import AsyncSampler
from r1flow.train.grpo_loss import (
    aggregate_loss,
    completion_logprobs,
    group_advantages,
    masked_mean,
    per_token_loss,
    zero_std_groups,
)
from r1flow.train.grpo_rollout import (
    Rollout,
    frozen_logprobs,
    prompt_sharing,
    reference_logprobs,
    rollout_tensors,
    sampled_logprobs,
)
from r1flow.train.sft import adamw_with_schedule
from r1flow.train.sharding import ShardedModule, unsharded


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
        self.sampler: AsyncSampler | None = None  # async_rollout: the sampler process, started when fit starts
        self.next_rollout: Rollout | None = None  # async_rollout: sampled ahead, taken over from a checkpoint
        self._requested: list[int] = []  # async_rollout: the prompts of the pending request
        self._ref_reset = False  # async_rollout: the reference was reset since the last request
        self.rollout_stats: dict[str, float] = {}
        self.last_samples: list[dict] = []
        self.history: list[dict] = []  # per-step scalars, for plots

    def on_fit_start(self) -> None:
        """The reward models score on the policy's device (Lightning places only the policy and reference)."""
        for scorer in self.scorers.values():
            model = getattr(scorer, "model", None)  # a RewardScorer; a plain function scores where it likes
            if isinstance(model, torch.nn.Module):
                model.to(self.device)
        if self.g.async_rollout:  # its new interpreter imports while the first validation check runs
            self._start_sampler()

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

    def general_share(self, step: int | None = None) -> float:
        """Share of a rollout's prompts that are general ones at ``step`` (default: this one; all-scenario RL)."""
        g = self.g
        late = (self.global_step if step is None else step) >= self.trainer.max_steps - g.general_last_steps
        return g.general_prompt_frac if len(self.pools["general"]) and g.general_last_steps and late else 0.0

    # ------------------------------------------------------------------ rollout
    def _prompt_indices(self, n_prompts: int, step: int) -> list[int]:
        """This rank's prompts of the next rollout, to be trained on at ``step``."""
        world, rank = self.trainer.world_size, self.trainer.global_rank
        n_general = round(n_prompts * self.general_share(step))
        return (self._next_prompts((n_prompts - n_general) * world)[rank::world]
                + self._next_prompts(n_general * world, "general")[rank::world])

    def _sampling_params(self) -> SamplingParams:
        return SamplingParams(n=self.g.group_size, temperature=self.g.temperature, top_p=self.g.top_p,
                              max_new_tokens=self.g.max_new_tokens)

    @torch.no_grad()
    def _sample_groups(self, n_prompts: int) -> tuple[list[int], list[list[Completion]]]:
        idx = self._prompt_indices(n_prompts, self.global_step)
        return idx, self.generator.generate([self.prompts[i] for i in idx], self._sampling_params(), desc="rollout")

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
        mb = self.g.mini_batch_size // self.trainer.world_size
        of = lambda model: frozen_logprobs(model, input_ids, attention_mask, prompt_width, self.g, mb)  # noqa: E731
        ref_logp = of(self.ref_model) if self.ref_model is not None else None
        old_logp = of(self.model) if self.steps_per_rollout > 1 else None
        return ref_logp, old_logp

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
            stats = {"frac_reward_zero_std": zero_std_groups(rewards, g.group_size).float().mean().item()}
            if g.dynamic_sampling:
                kept_idx, groups, t_more = self._refill(idx, groups, rewards, n_prompts, stats)
                t_gen += t_more
                if kept_idx is not idx:
                    idx = kept_idx
                    flat, items, rewards, parts = self._score(idx, groups)
        return self._finish(idx, flat, items, rewards, parts, stats, t_gen)

    def _finish(self, idx, flat, items, rewards, parts, stats: dict, t_gen: float, sampled=None) -> Rollout:
        """The rollout's advantages, tensors and cached log-probs (the sampler's, when ``sampled``, the
        reply of the asynchronous sampler), its metrics recorded."""
        advantages = group_advantages(rewards, self.g.group_size, self.g.scale_rewards)
        input_ids, attention_mask, width, cmask, total_active = self._tensors(idx, flat)
        t1 = time.perf_counter()
        if sampled is None:
            ref_logp, old_logp = self._cached_logprobs(input_ids, attention_mask, width)
            t_ref = time.perf_counter() - t1
        else:
            ref_logp, t_ref = sampled.ref_logp, sampled.seconds_ref
            ref_logp = ref_logp.to(self.device) if ref_logp is not None else None
            old_logp = sampled_logprobs(flat, cmask.shape[1]).to(self.device)
        stats.update({"timing/gen": t_gen, "timing/ref": t_ref, "general_prompt_share": self.general_share()})
        self._record(idx, items, flat, rewards, advantages, parts, stats)
        return Rollout(input_ids, attention_mask, width, cmask, advantages.to(self.device), old_logp, ref_logp,
                       total_active)

    # ------------------------------------------------------------------ one step off-policy
    def _request(self, step: int) -> None:
        """Ask the sampler for the rollout to be trained on at ``step``, with the weights as they are now."""
        g = self.g
        self._requested = self._prompt_indices(g.generation_batch_size // g.group_size, step)
        self.sampler.request([self.prompts[i] for i in self._requested], self._sampling_params(),
                             seed=self.seed * 1_000_003 + step, reset_ref=self._ref_reset)
        self._ref_reset = False

    def _start_sampler(self) -> None:
        """The sampler process, over copies of the policy and reference as they are (restored, on a resume)."""
        g = self.g
        self._threads = torch.get_num_threads()
        torch.set_num_threads(max(1, self._threads - g.async_sampler_threads))  # the rest: the trainer's
        sampler_pass = functools.partial(reference_logprobs, tok=self.tok, g=g)
        self.sampler = AsyncSampler(self.model, self.ref_model, self.tok, sampler_pass, g.async_sampler_threads,
                                    g.rollout.prompts_per_batch)

    @torch.no_grad()
    def _receive(self) -> Rollout:
        """The pending rollout, scored and tensorised."""
        sampled = self.sampler.result()
        flat, items, rewards, parts = self._score(self._requested, sampled.groups)
        stats = {"frac_reward_zero_std": zero_std_groups(rewards, self.g.group_size).float().mean().item()}
        return self._finish(self._requested, flat, items, rewards, parts, stats, sampled.seconds_gen, sampled)

    def _take_async(self, step: int) -> Rollout:
        """Rollout ``step``'s (sampled while the last update ran); the next one is asked for before training."""
        if self.next_rollout is None and not (self.sampler and self.sampler.pending):
            self._request(step)  # the first step, which waits for its rollout
        rollout = self.next_rollout if self.next_rollout is not None else self._receive()
        self.next_rollout = None
        if step + self.steps_per_rollout < self.trainer.max_steps:
            self._request(step + self.steps_per_rollout)
        return rollout

    def teardown(self, stage: str) -> None:
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None
            torch.set_num_threads(self._threads)

    # ------------------------------------------------------------------ update
    def training_step(self, batch, batch_idx):
        g = self.g
        step = self.global_step
        t_start = time.perf_counter()
        if step % self.steps_per_rollout == 0 or self.rollout is None:
            self.rollout = self._take_async(step) if g.async_rollout else self.make_rollout()
        t_update = time.perf_counter()
        k = step % self.steps_per_rollout
        B = self.rollout.input_ids.shape[0]
        size = -(-B // self.n_mini)  # ceil: a dynamic-sampling batch may hold fewer groups
        mb = self.rollout.slice(slice((k % self.n_mini) * size, (k % self.n_mini + 1) * size))

        logp, entropy = completion_logprobs(self.model, mb.input_ids, mb.attention_mask, mb.prompt_width,
                                            g.temperature, g.logprob_chunk_rows, with_entropy=True,
                                            group_size=prompt_sharing(g, size), length_buckets=g.length_buckets)
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
            self._ref_reset = True

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
            # one step off-policy, sampling overlaps the update: the step's wall time is what it took
            total = metrics["timing/step"] if g.async_rollout else (
                self.rollout_stats["timing/gen"] + self.rollout_stats["timing/ref"] + metrics["timing/update"])
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
            "next_rollout": self._sampled_ahead(),
            "rollout_stats": self.rollout_stats,
        }  # the random generators are r1flow/train/trainer.py's RandomStates

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        s = checkpoint.get("grpo_state")
        if not s:
            return
        self.cursors, self.history, self.rollout_stats = dict(s["cursors"]), s["history"], s["rollout_stats"]
        self.rollout = Rollout(**s["rollout"]) if s["rollout"] else None
        self.next_rollout = Rollout(**s["next_rollout"]) if s.get("next_rollout") else None

    def _sampled_ahead(self) -> dict | None:
        """async_rollout: the next rollout, waited for when still being sampled (what a resumed stage trains on)."""
        if self.sampler is not None and self.sampler.pending:
            self.next_rollout = self._receive()
        return self.next_rollout.state() if self.next_rollout is not None else None
