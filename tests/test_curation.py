"""Rejection sampling's filters, de-duplication, per-prompt cap and report; the data mix of general SFT."""

from __future__ import annotations

import json

import pytest
import torch

from r1flow.config import compose
from r1flow.harness.entry import StageContext
from r1flow.harness.files import write_jsonl
from r1flow.runners.curation import sample_shard
from r1flow.runners.sft import mix, render_sft_rows
from r1flow.sampling.curation import (
    FILTERS,
    FilterLimits,
    curate,
    longest_paragraph_words,
    merge_reports,
    reject_reason,
    sft_row,
)
from r1flow.sampling.prompts import render_prompt, think_prefill
from r1flow.sampling.rollout import Completion
from r1flow.world.tasks import cot_response, direct_response
from r1flow.world.tokenizer import build_tokenizer

ITEM = {"id": "chain_sum-train-1", "family": "chain_sum", "answer": "-4",
        "question": "State the final answer to the following arithmetic problem: 4 - 1 - 7 =",
        "metadata": {"expression": "4 - 1 - 7", "num_terms": 3, "num_digits": 1}}
GOOD = "4 - 1 - 7 =\n3 - 7 =\n-4\n</think>\nThe answer is <answer>-4</answer>."
LIMITS = FilterLimits(min_language=1.0, max_paragraph_words=12, max_repetition=0.2)


def test_a_correct_readable_response_is_kept():
    reasoning, summary = cot_response("4 - 1 - 7")
    assert f"{reasoning}\n</think>\n{summary}" == GOOD
    assert reject_reason(ITEM, GOOD, False, LIMITS) is None


@pytest.mark.parametrize(
    "response, truncated, reason",
    [
        (GOOD, True, "truncated"),
        ("3 - 7 =\n-4\n</think>\n", False, "missing_summary"),  # no summary with an answer
        ("3 - 7 =\n-4\nThe answer is <answer>-4</answer>.", False, "missing_summary"),  # no </think>
        ("3 - 7 =\n-3\n</think>\nThe answer is <answer>-3</answer>.", False, "incorrect"),
        ("3 - 7 =\n-4 答案\n</think>\nThe answer is <answer>-4</answer>.", False, "mixed_language"),
        ("so " * 13 + "\n-4\n</think>\nThe answer is <answer>-4</answer>.", False, "long_paragraph"),
        ("```\n3 - 7\n```\n-4\n</think>\nThe answer is <answer>-4</answer>.", False, "code_block"),
        ("a b a b\n\na b a b\n\n-4\n</think>\nThe answer is <answer>-4</answer>.", False, "repetition"),
    ],
)
def test_each_filter_drops_what_it_names(response, truncated, reason):
    assert reason in FILTERS
    assert reject_reason(ITEM, response, truncated, LIMITS) == reason


def test_paragraphs_are_blocks_between_blank_lines():
    assert longest_paragraph_words("a b\nc d e\n\nf") == 5
    assert longest_paragraph_words("") == 0


def test_curate_deduplicates_caps_and_reports_per_filter_and_family():
    other = {**ITEM, "id": "basic-train-2", "family": "basic_arithmetic", "question": "Calculate 2 * 3 - 1.",
             "answer": "5", "metadata": {"expression": "2 * 3 - 1"}}
    good2 = "6 - 1 =\n5\n</think>\nThe answer is <answer>5</answer>."
    variant = "3 - 7 =\n\n-4\n</think>\nThe answer is <answer>-4</answer>."
    samples = [
        {"item": ITEM, "response": GOOD, "truncated": False, "length": 20},
        {"item": ITEM, "response": GOOD, "truncated": False, "length": 20},  # duplicate
        {"item": ITEM, "response": variant, "truncated": False, "length": 21},
        {"item": ITEM, "response": variant + " ", "truncated": False, "length": 22},  # over the cap of 2
        {"item": other, "response": good2, "truncated": False, "length": 19},
        {"item": other, "response": "6 - 1 =\n4\n</think>\nThe answer is <answer>4</answer>.", "truncated": False,
         "length": 19},
    ]
    kept, report = curate(samples, LIMITS, max_per_prompt=2)
    assert [s["response"] for s in kept] == [GOOD, variant, good2]
    assert report["dropped"] == {"duplicate": 1, "over_cap": 1, "incorrect": 1}
    assert report["by_family"]["chain_sum"] == {"sampled": 4, "kept": 2, "duplicate": 1, "over_cap": 1}
    assert report["by_family"]["basic_arithmetic"] == {"sampled": 2, "kept": 1, "incorrect": 1}
    assert report["sampled"] == 6 and report["kept"] == 3 and report["yield"] == pytest.approx(0.5)
    assert report["prompts"] == 2 and report["prompts_with_a_kept_sample"] == 2
    both = merge_reports([report, report])
    assert both["kept"] == 6 and both["dropped"]["duplicate"] == 2 and both["yield"] == pytest.approx(0.5)


def test_general_sft_mix_holds_the_configured_share_of_non_reasoning_rows():
    reasoning = [{"id": f"r{i}"} for i in range(30)]
    general = [{"id": f"g{i}"} for i in range(100)]
    rows = mix(reasoning, general, 0.25, seed=0)
    assert rows[:30] == reasoning and len(rows) == 40  # 10 of 40 = 25 %
    assert len(mix(reasoning, general[:5], 0.25, seed=0)) == 35  # as many as exist
    assert mix([], general, 0.25, seed=0)[0]["id"].startswith("g")  # nothing sampled: general only
    assert direct_response("c, b, a").startswith("<think>\n\n</think>")


def test_a_kept_sample_becomes_the_sft_row_the_policy_would_have_written():
    tok = build_tokenizer([ITEM["question"]])
    sample = {"item": ITEM, "prompt_content": ITEM["question"], "response": GOOD}
    row = render_sft_rows(tok, [sft_row(sample, think_prefill(tok))])[0]
    assert row["prompt"] == render_prompt(tok, ITEM["question"])  # ends with the pre-filled <think>
    assert row["response"] == GOOD + tok.eos_token


class DrawRecorder:
    """A generator that records the uniform draws it makes from torch's generator, one per sample,
    as a sampler makes its draws (every sample is then dropped: its text is not an answer)."""

    def __init__(self):
        self.draws: list[torch.Tensor] = []

    def generate(self, prompts, params, desc=""):
        draws = torch.rand(len(prompts), params.n)
        self.draws.append(draws)
        return [[Completion(text=f"{x:.6f}", token_ids=[0], truncated=True) for x in row.tolist()] for row in draws]


def test_each_prompt_shard_draws_from_its_own_seed_in_a_job_of_its_own_or_in_one_process(tmp_path):
    """The DAG samples each prompt shard in a job of its own, started from the stage's seed; by hand
    (io.part=all) one process samples the shards one after another: the same draws either way, and
    different ones in each shard."""
    cfg = compose(["experiment=smoke"])
    items = [{**ITEM, "id": f"chain_sum-train-{i}"} for i in range(6)]
    shards = []
    for i in range(2):
        shards.append(tmp_path / "shards" / f"prompts_00{i}.jsonl")
        write_jsonl(shards[-1], items[3 * i : 3 * i + 3])
    tok = build_tokenizer([ITEM["question"]])
    ctx = StageContext(cfg=cfg, stage="rejection_sampling", out_dir=tmp_path, run=None, config_digest="")
    jobs, one_process = DrawRecorder(), DrawRecorder()
    for shard in shards:
        torch.manual_seed(cfg.seed)  # a job of its own: stage_main seeds it
        sample_shard(ctx, shard, tmp_path / "jobs" / shard.stem, (tok, jobs))
    torch.manual_seed(cfg.seed)
    for shard in shards:
        sample_shard(ctx, shard, tmp_path / "one" / shard.stem, (tok, one_process))
    assert all(torch.equal(a, b) for a, b in zip(jobs.draws, one_process.draws))
    assert not torch.equal(jobs.draws[0], jobs.draws[1])
    assert json.loads((tmp_path / "jobs" / "prompts_001" / "report.json").read_text())["sampled"] == 3 * cfg.rejection_sampling.n
