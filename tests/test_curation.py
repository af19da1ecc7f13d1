"""Rejection sampling's filters, de-duplication, per-prompt cap and report; the data mix of general SFT."""

from __future__ import annotations

import pytest

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
