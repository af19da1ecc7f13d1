"""Rejection sampling's curation (arXiv:2501.12948 §2.3.3, stage 3a): keep correct, readable samples only.

A sample is dropped by the first filter it fails, in the order of ``FILTERS``; survivors are
de-duplicated (same prompt, same response) and capped at ``max_per_prompt`` per prompt. The same
verifiers as RL and evaluation decide correctness; the readability filters are the paper's (mixed
languages, long paragraphs, code blocks) plus repetition, truncation and a missing summary.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from r1flow.sampling.rewards import language_consistency, repetition_penalty
from r1flow.sampling.verify import format_of, format_ok, is_correct

FILTERS = ("truncated", "missing_summary", "incorrect", "mixed_language", "long_paragraph", "code_block",
           "repetition")
CODE_FENCE = re.compile(r"```|~~~")


@dataclass(frozen=True)
class FilterLimits:
    min_language: float = 1.0  # share of CoT words in the prompt's script
    max_paragraph_words: int = 120  # a paragraph is a block between blank lines
    max_repetition: float = 0.5  # share of repeated word 3-grams (rewrite chains reach ~0.35)


def longest_paragraph_words(text: str) -> int:
    return max((len(p.split()) for p in re.split(r"\n\s*\n", text)), default=0)


def reject_reason(item: dict, response: str, truncated: bool, limits: FilterLimits) -> str | None:
    """The first filter ``response`` fails, or None when it is kept. ``response`` is the text after
    the template's pre-filled ``<think>``."""
    if truncated:
        return "truncated"
    if not format_ok(response, format_of(item)):
        return "missing_summary"
    if not is_correct(item, response):
        return "incorrect"
    if language_consistency([response], [item])[0] < limits.min_language:
        return "mixed_language"
    if longest_paragraph_words(response.split("</think>", 1)[0]) > limits.max_paragraph_words:
        return "long_paragraph"
    if CODE_FENCE.search(response):
        return "code_block"
    if -repetition_penalty([response], max_penalty=-1.0)[0] > limits.max_repetition:
        return "repetition"
    return None


def curate(samples: list[dict], limits: FilterLimits, max_per_prompt: int) -> tuple[list[dict], dict]:
    """Filter, de-duplicate and cap ``samples`` (dicts with ``item``, ``response``, ``truncated``,
    ``length``). Returns the kept samples and a report: counts per filter and per family."""
    dropped: Counter = Counter()
    by_family: dict[str, Counter] = defaultdict(Counter)
    kept: list[dict] = []
    seen: set[tuple[str, str]] = set()
    per_prompt: Counter = Counter()
    for s in samples:
        item, fam = s["item"], s["item"]["family"]
        by_family[fam]["sampled"] += 1
        reason = reject_reason(item, s["response"], s["truncated"], limits)
        if reason is None and (item["id"], s["response"]) in seen:
            reason = "duplicate"
        if reason is None and per_prompt[item["id"]] >= max_per_prompt:
            reason = "over_cap"
        if reason:
            dropped[reason] += 1
            by_family[fam][reason] += 1
            continue
        seen.add((item["id"], s["response"]))
        per_prompt[item["id"]] += 1
        by_family[fam]["kept"] += 1
        kept.append(s)
    report = {"sampled": len(samples), "kept": len(kept), "prompts": len({s["item"]["id"] for s in samples}),
              "prompts_with_a_kept_sample": len(per_prompt), "dropped": dict(dropped),
              "by_family": {f: dict(c) for f, c in by_family.items()}}
    return kept, merge_reports([report])


def merge_reports(reports: list[dict]) -> dict:
    """Sum the counts of per-shard reports (shards hold disjoint prompts)."""
    total: dict = {"sampled": 0, "kept": 0, "prompts": 0, "prompts_with_a_kept_sample": 0, "dropped": Counter(),
                   "by_family": defaultdict(Counter)}
    for r in reports:
        for k in ("sampled", "kept", "prompts", "prompts_with_a_kept_sample"):
            total[k] += r[k]
        total["dropped"].update(r["dropped"])
        for fam, c in r["by_family"].items():
            total["by_family"][fam].update(c)
    total["dropped"] = dict(total["dropped"])
    total["by_family"] = {f: dict(c) for f, c in total["by_family"].items()}
    total["yield"] = total["kept"] / max(1, total["sampled"])
    return total


def sft_row(sample: dict, prefill: str) -> dict:
    """A kept sample as a chat row for SFT. ``prefill``: what the chat template's generation prompt
    wrote of the turn (``<think>\n``, or '' when the model opened its reasoning itself;
    r1flow/sampling/prompts.py: ``think_prefill``), written back so the row is the whole turn."""
    item = sample["item"]
    return {"id": item["id"], "family": item["family"], "source": "rejection_sampling",
            "messages": [{"role": "user", "content": sample["prompt_content"]},
                         {"role": "assistant", "content": prefill + sample["response"]}]}
