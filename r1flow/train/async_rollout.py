"""One-step off-policy GRPO (``async_rollout``): the next rollout is sampled in a process of its own
while the trainer updates the policy on the current one.

The trainer and the sampler take turns by request and reply: when the trainer takes rollout k
(sampled with the weights of one update ago), it copies its current weights into shared memory and
asks for rollout k + 1, then trains on rollout k while the sampler samples. The sampler copies the
weights before it samples, and the trainer writes them again only after the reply, so one buffer
serves. The sampler returns each token's log-probability under the policy that sampled it (from its
decode loop) and, when ``beta`` > 0, the reference model's: the loss's clipped ratio is then taken
against the policy that sampled (the behaviour policy), which is its importance-sampling correction.
The staleness is one update by construction. Each request carries its own seed, so a rollout's
samples depend only on (seed, step) and the weights: a resumed stage draws what an uninterrupted one
draws (the checkpoint holds the rollout already sampled for the next step).

The sampler runs on the CPU threads the trainer leaves it (``async_sampler_threads``): on a 2-core
machine a core each, which bench/rollout_training_overlap.py measured to pay only with the sampler
in a process of its own (two threads of one process contend for the interpreter).
"""

from __future__ import annotations

import copy
import time
import traceback
from dataclasses import dataclass

import torch
import torch.multiprocessing as mp

import r1flow.harness.models  # noqa: F401 (registers the sdpa_gqa attention kernel a model may name)
from r1flow.sampling.rollout import Completion, HFGenerator, SamplingParams


@dataclass
class Request:
    prompts: list[str]
    params: SamplingParams
    seed: int  # the sampler's torch seed for this rollout
    reset_ref: bool  # the reference model takes the policy's weights first (ref_reset_every)


@dataclass
class Sampled:
    groups: list[list[Completion]]  # each completion with its tokens' log-probs (behaviour policy)
    ref_logp: torch.Tensor | None  # (B, C) the reference model's, as ``rollout_tensors`` lays the rows out
    seconds_gen: float
    seconds_ref: float


def weights_of(model) -> dict[str, torch.Tensor]:
    """A model's parameters and buffers by name: what the sampler's copy takes from the trainer's."""
    return dict(model.named_parameters()) | dict(model.named_buffers())


def _serve(conn, policy, ref_model, tok, shared: dict, logprobs_of, threads: int, prompts_per_batch: int) -> None:
    """The sampler process: one ``Sampled`` (or a traceback) per ``Request``, until None."""
    torch.set_num_threads(threads)
    generator = HFGenerator(policy, tok, prompts_per_batch=prompts_per_batch, progress=False)
    params_of = weights_of(policy)
    while (req := _next_request(conn)) is not None:
        try:
            with torch.no_grad():
                for name, value in shared.items():
                    params_of[name].copy_(value)
                if req.reset_ref and ref_model is not None:
                    ref_model.load_state_dict(policy.state_dict())
            torch.manual_seed(req.seed)
            t0 = time.perf_counter()
            groups = generator.generate(req.prompts, req.params, logprobs=True)
            t1 = time.perf_counter()
            ref_logp = logprobs_of(ref_model, req.prompts, groups) if ref_model is not None else None
            conn.send(Sampled(groups, ref_logp, t1 - t0, time.perf_counter() - t1))
        except Exception:  # noqa: BLE001 (the trainer raises it, with this traceback)
            conn.send(traceback.format_exc())


def _next_request(conn) -> Request | None:
    """The next request; None at the end, or when the trainer is gone (killed: the spawned sampler holds
    no copy of the trainer's end of the pipe, so it reads end-of-file and ends too)."""
    try:
        return conn.recv()
    except EOFError:
        return None


class AsyncSampler:
    """The trainer's side: a sampler process over copies of the policy and reference model.

    ``logprobs_of(model, prompts, groups)`` is the reference pass the sampler runs on a reply's
    rows (a picklable callable). The process is spawned (a new interpreter: a few seconds of imports,
    once per stage), not forked: a fork of a process whose OpenMP threads have run can hang in its
    first parallel operator (seen here: a forked sampler stuck on a futex in the rotary embedding's
    matmul), and CUDA cannot be forked at all. The copies of the models reach it through shared
    memory; it uses ``threads`` torch threads."""

    def __init__(self, policy, ref_model, tok, logprobs_of, threads: int, prompts_per_batch: int):
        self.sources = weights_of(policy)  # the trainer's tensors, copied into ``shared`` at each request
        self.shared = {name: t.detach().clone().share_memory_() for name, t in self.sources.items()}
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        sampler_ref = copy.deepcopy(ref_model) if ref_model is not None else None
        self.process = ctx.Process(target=_serve, daemon=True, name="r1flow-sampler",
                                   args=(child, copy.deepcopy(policy).eval(), sampler_ref, tok, self.shared,
                                         logprobs_of, threads, prompts_per_batch))
        self.process.start()
        child.close()
        self.pending = False

    def request(self, prompts: list[str], params: SamplingParams, seed: int, reset_ref: bool = False) -> None:
        """Sample ``prompts`` with the policy's weights as they are now."""
        if self.pending:
            raise RuntimeError("one rollout at a time: take the pending one first")
        with torch.no_grad():
            for name, buf in self.shared.items():
                buf.copy_(self.sources[name])
        self.conn.send(Request(prompts, params, seed, reset_ref))
        self.pending = True

    def result(self) -> Sampled:
        """The pending rollout, once sampled."""
        try:
            reply = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"the sampler process died (exit code {self.process.exitcode})") from None
        self.pending = False
        if isinstance(reply, str):
            self.close()
            raise RuntimeError(f"the sampler process failed:\n{reply}")
        return reply

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()
        self.conn.close()
