"""A GRPO rollout as the loss reads it: its tensors, and the log-prob passes over its rows that
the trainer (r1flow/train/grpo.py) and the asynchronous sampler (r1flow/train/async_rollout.py)
both run."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from r1flow.config.rl import GRPOConfig
from r1flow.sampling.rollout import Completion
from r1flow.train.grpo_loss import completion_logprobs


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


def prompt_sharing(g: GRPOConfig, rows: int) -> int:
    """The group size the log-prob passes share a prompt over: G when the passes' slices of ``rows``
    rows hold whole groups (they start at multiples of ``rows``), else 1 (one pass per row)."""
    return g.group_size if g.shared_prompt_forward and rows % g.group_size == 0 else 1


@torch.no_grad()
def frozen_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int,
                    g: GRPOConfig, rows: int) -> torch.Tensor:
    """(B, C) log-probs of a rollout's completions under a model that does not train here (the
    reference, or pi_old), ``rows`` rows per pass."""
    n = input_ids.shape[0]
    rows = rows or n
    return torch.cat([
        completion_logprobs(model, input_ids[s : s + rows], attention_mask[s : s + rows], prompt_width, g.temperature,
                            g.logprob_chunk_rows, group_size=prompt_sharing(g, rows),
                            length_buckets=g.length_buckets)[0]
        for s in range(0, n, rows)
    ])


def sampled_logprobs(flat: list[Completion], width: int) -> torch.Tensor:
    """(B, width) the sampler's log-probs of each completion's tokens (``Completion.logprobs``), 0
    past a completion's end, laid out as ``rollout_tensors`` lays out the completions."""
    out = torch.zeros((len(flat), width), dtype=torch.float32)
    for i, c in enumerate(flat):
        out[i, : c.length] = torch.tensor(c.logprobs, dtype=torch.float32)
    return out


def reference_logprobs(ref_model, prompts: list[str], groups: list[list[Completion]], tok, g: GRPOConfig):
    """The reference model's log-probs of a rollout's completions, ``g.mini_batch_size`` rows per
    pass, as the trainer computes them (the asynchronous sampler's reference pass)."""
    flat = [c for grp in groups for c in grp]
    input_ids, attention_mask, width, _ = rollout_tensors(tok, prompts, flat, g.group_size, g.mask_truncated)
    return frozen_logprobs(ref_model, input_ids, attention_mask, width, g, g.mini_batch_size)
