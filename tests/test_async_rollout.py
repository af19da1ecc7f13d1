"""One-step off-policy GRPO (``async_rollout``): the decode loop's log-probs of its own samples are
the loss's, each rollout is sampled by the sampler process with the weights of exactly one update
ago (the first with the initial ones), its reference log-probs are the reference model's, and a
sampler that fails says why in the trainer. The exact resume of a killed asynchronous stage is
tests/test_grpo_stage.py's."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from r1flow.config import compose
from r1flow.harness.models import build_model
from r1flow.sampling.prompts import render_prompt
from r1flow.sampling.rollout import HFGenerator, SamplingParams
from r1flow.train.grpo import GRPOModule
from r1flow.train.grpo_loss import completion_logprobs
from r1flow.train.grpo_rollout import rollout_tensors
from r1flow.world.tokenizer import build_tokenizer

QUESTIONS = ["Calculate 1 + 2.", "Calculate 9 - 3 * 2 + 1 - 4.", "What is 4 - 1 - 7?", "Calculate 8 * 7 - 6."]
ITEMS = [{"id": str(i), "family": "chain_sum", "question": q, "answer": "3",
          "metadata": {"expression": "1 + 2", "num_terms": 2, "num_digits": 1}} for i, q in enumerate(QUESTIONS)]


@pytest.fixture(scope="module")
def tiny():
    tok = build_tokenizer(QUESTIONS)
    torch.manual_seed(0)
    return tok, build_model(compose(["experiment=smoke"]).model, tok)


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_the_decode_loops_logprobs_of_its_samples_are_the_loss_passes(tiny, top_p):
    """At temperature 0.7, with and without top-p: the same samples as without log-probs, and each
    token's log-prob that of one full forward pass over prompt and completion (before top-p)."""
    tok, model = tiny
    gen = HFGenerator(model, tok, progress=False)
    params = SamplingParams(n=4, temperature=0.7, top_p=top_p, max_new_tokens=12)
    prompts = [render_prompt(tok, q) for q in QUESTIONS]
    torch.manual_seed(3)
    plain = gen.generate(prompts, params)
    torch.manual_seed(3)
    groups = gen.generate(prompts, params, logprobs=True)
    assert [[c.token_ids for c in g] for g in groups] == [[c.token_ids for c in g] for g in plain]
    flat = [c for g in groups for c in g]
    ids, mask, width, _ = rollout_tensors(tok, prompts, flat, 4, False)
    with torch.no_grad():
        full = completion_logprobs(model, ids, mask, width, temperature=0.7)[0]
    for i, c in enumerate(flat):
        assert len(c.logprobs) == c.length
        assert torch.allclose(torch.tensor(c.logprobs), full[i, : c.length], atol=1e-4), i
    assert max(c.length for c in flat) > 3


def grpo_config(steps: int):
    """Off-policy GRPO of 2 prompts x 4 completions of <= 10 tokens per step, with a reference model (beta > 0)."""
    g = compose(["experiment=smoke", "reasoning_rl.beta=0.04", "reasoning_rl.optim.lr=1e-2",
                 "reasoning_rl.generation_batch_size=8", "reasoning_rl.mini_batch_size=8", "reasoning_rl.group_size=4",
                 "reasoning_rl.optim.warmup_steps=0", "reasoning_rl.max_new_tokens=10", "reasoning_rl.temperature=1.0",
                 "reasoning_rl.async_rollout=true", f"reasoning_rl.max_steps={steps}"]).reasoning_rl
    g.rewards = {"accuracy": 1.0}
    return g


class Snapshots(Callback):
    """The policy's weights when each step starts, and the rollout each step trained on."""

    def __init__(self):
        self.weights, self.rollouts = [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.weights.append(copy.deepcopy(module.model.state_dict()))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.rollouts.append(module.rollout)


def test_each_rollout_is_sampled_with_the_weights_of_one_update_ago(tiny):
    tok, model = tiny
    model = copy.deepcopy(model)
    ref = copy.deepcopy(model)
    module = GRPOModule(model, tok, grpo_config(steps=4), ITEMS, [render_prompt(tok, q) for q in QUESTIONS],
                        HFGenerator(model, tok, progress=False), seed=5)
    snaps = Snapshots()
    trainer = L.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", callbacks=[snaps])
    # every completion scores alike under accuracy on random text: reward its mean token id, so that
    # every group has advantages and the policy moves at every update
    module._score = _scored_by_token_ids(module._score)
    trainer.fit(module, DataLoader(range(4), batch_size=1))
    assert module.sampler is None, "the sampler process is closed after fit"
    shadow = copy.deepcopy(model)

    def logp(weights, r):
        shadow.load_state_dict(weights)
        with torch.no_grad():
            return completion_logprobs(shadow, r.input_ids, r.attention_mask, r.prompt_width, 1.0)[0] * r.completion_mask

    for step, r in enumerate(snaps.rollouts):
        behaviour = max(step - 1, 0)  # step 0's rollout: the initial weights
        m = r.completion_mask
        assert torch.allclose(r.old_logp * m, logp(snaps.weights[behaviour], r), atol=1e-4), step
        assert torch.allclose(r.ref_logp * m, logp(ref.state_dict(), r), atol=1e-4), step
        for other in {max(behaviour - 1, 0), step} - {behaviour}:  # the policy moved: these weights differ
            assert (r.old_logp * m - logp(snaps.weights[other], r)).abs().max() > 1e-2, (step, other)


def _scored_by_token_ids(score):
    def scored(idx, groups):
        flat, items, rewards, parts = score(idx, groups)
        return flat, items, torch.tensor([sum(c.token_ids) / c.length for c in flat]), parts
    return scored


def test_a_sampler_that_fails_raises_its_error_in_the_trainer(tiny):
    tok, model = tiny
    g = grpo_config(steps=2)
    module = GRPOModule(copy.deepcopy(model), tok, g, ITEMS, [render_prompt(tok, q) for q in QUESTIONS],
                        HFGenerator(model, tok, progress=False))
    module.prompts = [None] * len(QUESTIONS)  # the sampler's tokenizer raises on them
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    with pytest.raises(RuntimeError, match="(?s)the sampler process failed:.*Traceback.*Error"):
        trainer.fit(module, DataLoader(range(2), batch_size=1))
    assert not module.sampler.process.is_alive(), "the failed sampler process was stopped"
