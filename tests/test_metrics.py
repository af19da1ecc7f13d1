"""Unit tests: pass@k, cons@k and the aggregation against hand-computed values."""

from __future__ import annotations

import math

import pytest

from r1flow.sampling.evaluation import aggregate, majority_vote, mean_ci95, pass_at_k


def test_pass_at_k_hand_values():
    assert pass_at_k(8, 0, 1) == 0.0
    assert pass_at_k(8, 8, 8) == 1.0
    assert pass_at_k(8, 2, 1) == pytest.approx(2 / 8)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(8, 1, 8) == 1.0
    assert pass_at_k(10, 3, 4) == pytest.approx(1 - math.comb(7, 4) / math.comb(10, 4))
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 8)


def test_majority_vote():
    assert majority_vote(["3", "4", "3", None]) == "3"
    assert majority_vote(["4", "3", "3", "4"]) == "4"  # tie: first seen
    assert majority_vote([None, None]) is None


def graded(correct, answers, cons):
    n = len(correct)
    return {"correct": correct, "answers": answers, "cons": cons, "format": [True] * n, "agree": [True] * n,
            "lengths": [10] * n, "truncated": [False] * n}


def test_aggregate_hand_computed():
    g = [
        graded([True, False, False, False], ["1", "2", "2", "2"], False),  # 1/4, vote wrong
        graded([True, True, True, False], ["5", "5", "5", "6"], True),  # 3/4, vote right
        graded([False] * 4, ["0"] * 4, False),  # 0/4
    ]
    m = aggregate(g, 4)
    assert m["pass@1"] == pytest.approx((0.25 + 0.75 + 0) / 3)
    assert m["cons@k"] == pytest.approx(1 / 3)
    assert m["pass@k"] == pytest.approx(2 / 3)
    assert m["pass_at"]["2"] == pytest.approx((pass_at_k(4, 1, 2) + pass_at_k(4, 3, 2)) / 3)
    lo, hi = m["pass@1_ci95"]
    assert lo < m["pass@1"] < hi
    assert m["k"] == 4 and m["n_prompts"] == 3


def test_ci_shrinks_with_more_prompts():
    _, lo1, hi1 = mean_ci95([0, 1] * 50)
    _, lo2, hi2 = mean_ci95([0, 1] * 500)
    assert (hi2 - lo2) < (hi1 - lo1) / 3
