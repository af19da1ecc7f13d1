"""The HF backend's decode loop (``rollout.hf_drop_finished``): finished samples leave the batch,
greedy completions equal transformers' ``generate``, a seed gives the same samples, its preallocated
KV cache gives the samples transformers' ``DynamicCache`` gives, and its token draw has the
distribution ``torch.multinomial`` has."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from r1flow.config import compose
from r1flow.harness.models import build_model
from r1flow.sampling import rollout
from r1flow.sampling.rollout import HFGenerator, SamplingParams, sample_tokens
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


def test_the_preallocated_cache_gives_the_samples_of_transformers_dynamic_cache(untrained, monkeypatch):
    """Sampled with one seed (rows leaving the batch as they stop): the decode loop's cache as built
    (its buffers sized for the whole decode), with buffers of 3 positions that must grow, and
    transformers' ``DynamicCache`` give the same tokens."""
    model, (loop, _) = untrained
    params = SamplingParams(n=8, temperature=1.0, top_p=0.95, max_new_tokens=24)
    build = rollout.decode_cache
    assert all(isinstance(layer, rollout.PreallocatedLayer) for layer in build(model, 8).layers)
    samples = {}
    for name, cache in (("preallocated", build), ("growing", lambda m, capacity: build(m, 3)),
                        ("dynamic", lambda m, capacity: DynamicCache(config=m.config))):
        monkeypatch.setattr(rollout, "decode_cache", cache)
        torch.manual_seed(3)
        samples[name] = [[c.token_ids for c in g] for g in loop.generate(QUESTIONS, params)]
    assert samples["preallocated"] == samples["dynamic"] == samples["growing"]
    assert len({len(ids) for g in samples["dynamic"] for ids in g}) > 3  # rows left the batch at different steps


def test_the_token_draw_has_the_distribution_of_multinomial_and_never_draws_a_zero_probability_token():
    """sample_tokens against torch.multinomial on the same rows (one peaked, one with top-p's zeros,
    one uniform over the 1,056 tokens of the tiny vocabulary, one a single token): 100,000 draws
    each; the frequency of every token expected 20 times or more, and of the rarer ones pooled,
    within 5 standard errors (as multinomial's are); zeros never drawn."""
    torch.manual_seed(0)
    V, n = 1056, 100_000
    peaked = torch.randn(V).mul(3).softmax(-1)
    cut = peaked.clone()
    cut[cut < cut.sort(descending=True).values[20]] = 0  # what top-p leaves: a few tokens, the rest 0
    one = torch.zeros(V)
    one[V - 1] = 1.0  # the last token: the draw's upper end
    probs = torch.stack([peaked, cut / cut.sum(), torch.full((V,), 1 / V), one])
    ours = torch.stack([sample_tokens(probs) for _ in range(n)], dim=1)
    theirs = torch.multinomial(probs, n, replacement=True)
    for row, p in enumerate(probs):
        common = p * n >= 20
        bins = torch.cat([p[common], p[~common].sum(0, keepdim=True)])
        se = (bins * (1 - bins) / n).sqrt() + 1e-9
        for draws in (ours[row], theirs[row]):
            f = torch.bincount(draws, minlength=V) / n
            f = torch.cat([f[common], f[~common].sum(0, keepdim=True)])
            assert ((f - bins).abs() <= 5 * se).all(), (row, ((f - bins).abs() / se).max())
        assert (torch.bincount(ours[row], minlength=V)[p == 0] == 0).all()


def test_the_top_p_warper_equals_transformers_bit_for_bit(monkeypatch):
    """TopPWarper against transformers' TopPLogitsWarper on the same logits: rows of the tiny
    vocabulary's width at the temperatures and p the stages sample with, float32 and float64; rows
    with -inf (another warper's cuts); a row of equal logits, and one whose ten most likely tokens
    are equal, where the boundary falls among equal logits (transformers' path for those rows);
    min_tokens_to_keep above 1. The outputs are equal tensors, and the fast path (no torch.sort)
    served every row without such a tie."""
    torch.manual_seed(0)
    V = 1056
    logits = torch.randn(64, V) * torch.linspace(0.5, 8, 64)[:, None]  # flat to peaked rows
    logits[3, :100] = -float("inf")
    logits[5] = 0.0  # uniform: the boundary cuts through equal logits
    logits[6, :10] = 8.0  # ten equal most likely tokens, 0.93 of the mass: at p 0.5 some go, some stay
    sorts, fallbacks = [], 0
    real_sort = torch.sort
    monkeypatch.setattr(torch, "sort", lambda *a, **k: sorts.append(a[0].shape[0]) or real_sort(*a, **k))
    for dtype in (torch.float32, torch.float64):
        for temperature, p, keep in ((0.6, 0.95, 1), (1.0, 0.9, 1), (1.0, 0.999999, 1), (0.6, 0.5, 5)):
            scores = (logits / temperature).to(dtype)
            expected = rollout.TopPLogitsWarper(p, min_tokens_to_keep=keep)(None, scores)
            sorts.clear()
            got = rollout.TopPWarper(p, min_tokens_to_keep=keep)(None, scores)
            assert torch.equal(got, expected), (dtype, temperature, p)
            assert sum(sorts) <= 2, sorts  # only the tied rows took transformers' sort
            assert (got == -float("inf")).any(dim=1).float().mean() > 0.5  # the warper did cut
            fallbacks += sum(sorts)
    assert fallbacks == 8  # the tied rows took it: the uniform row at three p, the ten-equal row at p 0.5
