"""The HF backend's decode loop (``rollout.hf_drop_finished``): finished samples leave the batch,
greedy completions equal transformers' ``generate``, and a seed gives the same samples."""

from __future__ import annotations

import pytest
import torch

from r1flow.config import compose
from r1flow.harness.models import build_model
from r1flow.sampling.rollout import HFGenerator, SamplingParams
from r1flow.world.tokenizer import build_tokenizer

QUESTIONS = ["Calculate 1 + 2.", "Calculate 9 - 3 * 2 + 1 - 4.", "What is 4 - 1 - 7?", "Calculate 8 * 7 - 6."]


@pytest.fixture(scope="module")
def untrained():
    """The tiny architecture, untrained, whose samples stop at any of a third of the vocabulary: they
    end after a few tokens, at different steps."""
    tok = build_tokenizer(QUESTIONS)
    torch.manual_seed(0)
    model = build_model(compose(["experiment=tiny"]).model, tok).eval()
    gens = [HFGenerator(model, tok, progress=False, drop_finished=drop) for drop in (True, False)]
    for gen in gens:
        gen.stop_ids = list(range(0, len(tok), 3))
    return model, gens


def test_greedy_completions_equal_generates(untrained):
    _, (loop, generate) = untrained
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=24)
    ours, theirs = loop.generate(QUESTIONS, greedy), generate.generate(QUESTIONS, greedy)
    assert [g[0].token_ids for g in ours] == [g[0].token_ids for g in theirs]
    assert len({g[0].length for g in ours}) > 1  # they stopped at different steps


def test_finished_samples_leave_the_batch_and_a_seed_repeats_the_samples(untrained):
    model, (loop, _) = untrained
    widths = []
    hook = model.model.register_forward_pre_hook(lambda m, args, kw: widths.append(kw["input_ids"].shape), with_kwargs=True)
    params = SamplingParams(n=8, temperature=1.0, top_p=0.95, max_new_tokens=24)
    try:
        torch.manual_seed(1)
        first = loop.generate(QUESTIONS, params)
    finally:
        hook.remove()
    torch.manual_seed(1)
    again = loop.generate(QUESTIONS, params)
    # one prefill of the 4 prompts, then decode steps of one token for the 32 samples' rows, fewer
    # as samples stop
    rows = [w[0] for w in widths[1:]]
    assert widths[0][0] == 4 and all(w[1] == 1 for w in widths[1:]) and len(rows) > 3
    assert rows == sorted(rows, reverse=True) and rows[0] <= 32 and rows[-1] < 16
    assert [[c.token_ids for c in g] for g in first] == [[c.token_ids for c in g] for g in again]
    flat = [c for g in first for c in g]
    assert len(flat) == 32 and len({c.length for c in flat}) > 3
    for c in flat:  # each sample ends at its first stop id, or ran to the limit
        stops = [i for i, t in enumerate(c.token_ids) if t in loop.stop_ids]
        assert stops == ([len(c.token_ids) - 1] if not c.truncated else []) and c.length <= 24
