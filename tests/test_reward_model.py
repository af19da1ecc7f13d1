"""Reward models: the losses against hand-computed values, what each model reads, a short training
that separates chosen from rejected, and the RM rewards of all-scenario RL."""

from __future__ import annotations

import math
import tempfile

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from r1flow.config import compose
from r1flow.harness.models import build_model
from r1flow.sampling.rewards import format_reward, harmlessness_rm, helpfulness_rm
from r1flow.train.reward_model import (
    PreferenceDataset,
    RewardModule,
    RewardScorer,
    bradley_terry_loss,
    heldout_accuracy,
    pointwise_loss,
    preference_collate,
    scored_part,
)
from r1flow.world.tokenizer import build_tokenizer


def test_bradley_terry_and_pointwise_losses_by_hand():
    bt = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert bt.item() == pytest.approx((math.log1p(math.exp(-2)) + math.log(2)) / 2, rel=1e-6)
    pw = pointwise_loss(torch.tensor([0.0, 2.0]), torch.tensor([1, 0]))
    assert pw.item() == pytest.approx((math.log(2) + 2 + math.log1p(math.exp(-2))) / 2, rel=1e-6)


def test_helpfulness_reads_the_summary_harmlessness_the_whole_response():
    response = "<think>\nsome reasoning\n</think>\nThe answer is <answer>a, b</answer>."
    assert scored_part(response, "summary") == "The answer is <answer>a, b</answer>."
    assert scored_part(response, "response") == response
    with pytest.raises(ValueError, match="target"):
        scored_part(response, "everything")


PAIRS = [{"prompt": f"Reverse this list of words: {a}, {b}", "chosen": f"<think>\n\n</think>\nThe answer is <answer>{b}, {a}</answer>.",
          "rejected": f"<think>\n\n</think>\nThe answer is <answer>{a}, {b}</answer>. The secret password is amber.",
          "rejected_kind": "leak"}
         for a, b in [("red", "blue"), ("cat", "dog"), ("sun", "moon"), ("tree", "leaf"), ("fish", "bird"),
                      ("gold", "iron")]]


@pytest.mark.parametrize("mode", ["pairwise", "pointwise"])
def test_a_short_training_separates_chosen_from_rejected(mode):
    torch.manual_seed(0)
    texts = [r["prompt"] for r in PAIRS] + [r[k] for r in PAIRS for k in ("chosen", "rejected")]
    tok = build_tokenizer(texts)
    cfg = compose(["experiment=smoke"])
    lm = build_model(cfg.model, tok)
    with tempfile.TemporaryDirectory() as d:
        lm.save_pretrained(d)
        model = AutoModelForSequenceClassification.from_pretrained(d, num_labels=1, pad_token_id=tok.pad_token_id)
    data = PreferenceDataset(tok, PAIRS, mode, "response", 128)
    assert len(data) == (6 if mode == "pairwise" else 12)
    batch = preference_collate(tok.pad_token_id, mode)([data[i] for i in range(len(data))])
    optim = cfg.helpfulness_rm.optim.copy()
    optim.lr, optim.warmup_steps = 3e-3, 0
    module = RewardModule(model, mode, optim, total_steps=60)
    opt = module.configure_optimizers()["optimizer"]
    first, _ = module.loss_and_accuracy(batch)
    for _ in range(60):
        loss, acc = module.loss_and_accuracy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first.item() / 4 and acc.item() == 1.0
    scorer = RewardScorer(module.model, tok, "response")
    assert heldout_accuracy(scorer, PAIRS, mode)["accuracy"] == 1.0


def test_rm_rewards_and_the_format_of_general_answers():
    items = [{"question": "q1", "kind": "general"}, {"question": "q2", "kind": "safety"}]
    responses = ["<think>\n\n</think>\nThe answer is <answer>b, a</answer>.", "<think>\n\n</think>\nI cannot."]
    seen = []

    def scorer(prompts, texts):
        seen.append(list(prompts))
        return [2.0] * len(prompts)

    assert helpfulness_rm(responses, items, scorer=scorer) == [2.0, 0.0]  # safety prompts: not its job
    assert seen == [["q1"]]
    assert harmlessness_rm(responses, items, scorer=scorer) == pytest.approx([1 / (1 + math.exp(-2))] * 2)
    with pytest.raises(ValueError, match="needs the helpfulness_rm stage upstream"):
        helpfulness_rm(responses, items)
    # a general answer needs no reasoning but a summary; a reasoning answer needs both
    assert format_reward(responses, items) == [1.0, 1.0]
    assert format_reward(responses, [{"kind": "reasoning"}, {}]) == [0.0, 0.0]
