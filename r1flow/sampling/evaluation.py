"""The evaluation protocol of R1 (arXiv:2501.12948 §3): k samples per prompt, verified by the task.

pass@1 is the mean over prompts of (correct samples / k), with a 95% interval over prompts;
cons@k is the accuracy of the majority-voted answer; pass@k is the unbiased estimator
1 − C(n−c, k)/C(n, k). Every number is reported with the eval spec that produced it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from r1flow.sampling.rollout import Completion, HFGenerator, SamplingParams
from r1flow.sampling.verify import final_answer, format_of, format_ok, reasoning_result, score


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """The most frequent extracted answer (ties: the one seen first); None if no answer at all."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def mean_ci95(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and normal-approximation 95% interval over independent units (prompts)."""
    x = np.asarray(values, dtype=float)
    m = float(x.mean()) if len(x) else float("nan")
    half = 1.96 * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    return m, m - half, m + half


def grade(item: dict, completions: list[Completion]) -> dict:
    """Per-prompt grading of k completions with the task's verifier."""
    answers = [final_answer(item, c.text) for c in completions]
    correct = [score(item, a) == 1.0 for a in answers]
    voted = majority_vote(answers)
    agree = [
        a is not None and reasoning_result(c.text) is not None and a == reasoning_result(c.text)
        for a, c in zip(answers, completions)
    ]
    return {
        "answers": answers,
        "correct": correct,
        "format": [format_ok(c.text, format_of(item)) for c in completions],
        "agree": agree,
        "lengths": [c.length for c in completions],
        "truncated": [c.truncated for c in completions],
        "cons": score(item, voted) == 1.0,
    }


def aggregate(graded: list[dict], k: int) -> dict:
    """Metrics over a list of graded prompts (all with the same number of samples)."""
    n = len(graded[0]["correct"])
    per_prompt = [sum(g["correct"]) / n for g in graded]
    p1, lo, hi = mean_ci95(per_prompt)
    flat = lambda key: [v for g in graded for v in g[key]]  # noqa: E731
    ks = sorted({1, *[2**i for i in range(1, 10) if 2**i <= n], n})
    answered = [(a, ok) for g in graded for a, ok in zip(g["answers"], g["agree"]) if a is not None]
    return {
        "pass@1": p1,
        "pass@1_ci95": [lo, hi],
        "cons@k": float(np.mean([g["cons"] for g in graded])),
        "pass@k": float(np.mean([pass_at_k(n, sum(g["correct"]), min(k, n)) for g in graded])),
        "pass_at": {str(j): float(np.mean([pass_at_k(n, sum(g["correct"]), j) for g in graded])) for j in ks},
        "k": k,
        "n_prompts": len(graded),
        "format_rate": float(np.mean(flat("format"))),
        "mean_length": float(np.mean(flat("lengths"))),
        "truncation_rate": float(np.mean(flat("truncated"))),
        "answer_agreement": float(np.mean([ok for _, ok in answered])) if answered else 0.0,
    }


def evaluate_split(generator: HFGenerator, items: list[dict], prompts: list[str], params: SamplingParams,
                   desc: str = "eval") -> tuple[dict, list[dict]]:
    """Sample, grade and aggregate one split; return (metrics with per-family breakdown, sample rows)."""
    completions = generator.generate(prompts, params, desc=desc)
    graded = [grade(it, cs) for it, cs in zip(items, completions)]
    metrics = aggregate(graded, params.n)
    by_family: dict[str, list[dict]] = defaultdict(list)
    for it, g in zip(items, graded):
        by_family[it["family"]].append(g)
    metrics["per_family"] = {fam: aggregate(gs, params.n) for fam, gs in sorted(by_family.items())}
    rows = []
    for it, cs, g in zip(items, completions, graded):
        for j, c in enumerate(cs):
            rows.append({
                "id": it["id"], "family": it["family"], "sample": j, "question": it["question"],
                "gold": it["answer"], "response": c.text, "answer": g["answers"][j],
                "correct": g["correct"][j], "format_ok": g["format"][j], "length": c.length,
                "truncated": c.truncated,
            })
    return metrics, rows
