"""The tiny world's reading diagnostic (r1flow/world/reading.py): copies of the question's expression
and pass@1 by number of terms, from a run's evaluations and from a greedy probe of a checkpoint; a
base's chain arithmetic against the same operations as facts."""

from __future__ import annotations

from collections import Counter

import pytest

from r1flow.harness.files import read_jsonl
from r1flow.world.reading import (
    arithmetic,
    by_terms,
    copies,
    evaluation,
    facts,
    first_rewrite,
    main,
    probe,
    table,
)

ITEMS = {
    "a": {"id": "a", "metadata": {"expression": "4 - 3 + 4", "num_terms": 3}},
    "b": {"id": "b", "metadata": {"expression": "1 - 4 - 3 - 7 + 2", "num_terms": 5}},
    "g": {"id": "g", "metadata": {}},  # a general task: no expression
}


def test_a_copy_is_the_reasonings_first_line_as_the_expression_with_its_equals_sign():
    assert copies("\n4 - 3 + 4 =\n1 + 4 =\n5\n</think>\n<answer>5</answer>", "4 - 3 + 4")
    assert not copies("\n4 - 3 =\n1 + 4 =\n5\n</think>", "4 - 3 + 4")  # a term dropped
    assert not copies("\n5\n</think>\n4 - 3 + 4 =", "4 - 3 + 4")  # after the reasoning: not a copy
    assert not copies("", "4 - 3 + 4")


def test_by_terms_counts_prompts_copies_and_right_answers_per_number_of_terms():
    rows = [
        {"id": "a", "response": "4 - 3 + 4 =\n5\n</think>", "correct": True},
        {"id": "a", "response": "4 + 4 =\n8\n</think>", "correct": False},
        {"id": "b", "response": "1 - 4 - 3 - 7 + 2 =\n-11\n</think>", "correct": True},
        {"id": "b", "response": "1 - 4 - 3 - 7 + 2 =\n-12\n</think>", "correct": False},
        {"id": "g", "response": "olleh", "correct": True},
    ]
    got = by_terms(rows, ITEMS)
    assert got == {3: {"prompts": 1, "copied": 0.5, "pass@1": 0.5}, 5: {"prompts": 1, "copied": 1.0, "pass@1": 0.5}}
    lines = table({"x": got, "y": {3: got[3]}}).splitlines()
    assert lines[0].startswith("| | copied: 3 terms | copied: 5 terms | pass@1: 3 terms | pass@1: 5 terms |")
    assert lines[2] == "| x | 50.0 % | 100.0 % | 50.0 % | 50.0 % |"
    assert lines[3] == "| y | 50.0 % | — | 50.0 % | — |"


def test_the_probe_samples_every_validation_prompt_that_states_an_expression(smoke_world):
    got = probe(str(smoke_world / "cold_start_sft" / "model"), smoke_world / "data", template="chat",
                max_new_tokens=16, threads=1)
    items = read_jsonl(smoke_world / "data" / "validation.jsonl")
    expected = Counter(int(it["metadata"]["num_terms"]) for it in items if "expression" in it.get("metadata", {}))
    assert expected and {t: r["prompts"] for t, r in got.items()} == dict(expected)
    assert all(0.0 <= r[k] <= 1.0 for r in got.values() for k in ("copied", "pass@1"))


def test_a_run_without_the_evaluation_reads_as_none_and_probe_needs_data(tmp_path, capsys):
    assert evaluation(tmp_path, "r1_zero") is None
    with pytest.raises(SystemExit):
        main(["--probe", "some/checkpoint"])
    assert "--probe needs --data" in capsys.readouterr().err


def test_a_first_rewrite_is_marked_whole_in_its_new_value_and_in_the_rest_of_its_line():
    right = {"rewrite": True, "value": True, "rest": True}
    assert first_rewrite("4 - 3 + 4", "1 + 4 =\n5") == right
    assert first_rewrite("4 - 3 + 4", "\n1 + 4 =\n5") == right  # a leading newline is not a line
    assert first_rewrite("4 - 3 + 4", "2 + 4 =\n6") == {"rewrite": False, "value": False, "rest": True}
    assert first_rewrite("4 - 3 + 4", "1 + 5 =\n6") == {"rewrite": False, "value": True, "rest": False}
    # multiplication first: the new value stands where the product was
    assert first_rewrite("3 + 2 * 4", "3 + 8 =\n11") == right
    assert first_rewrite("3 + 2 * 4", "5 * 4 =\n20") == {"rewrite": False, "value": False, "rest": False}
    assert first_rewrite("3 + 2 * 4", "") == {"rewrite": False, "value": False, "rest": False}


def test_the_arithmetic_probe_reads_every_length_of_a_base(smoke_world, capsys):
    got = arithmetic(str(smoke_world / "pretrain" / "model"), n=4, threads=1)
    assert set(got) == {3, 4, 5}
    assert all(set(r) == {"rewrite", "value", "rest", "fact"} and all(0.0 <= v <= 1.0 for v in r.values())
               for r in got.values())
    assert all(r["rewrite"] <= min(r["value"], r["rest"]) for r in got.values())  # whole implies both parts


def test_the_facts_probe_reads_a_base_by_the_size_of_b(smoke_world, capsys):
    model = str(smoke_world / "pretrain" / "model")
    got = facts(model, max_a=99, max_b=19, n=40, threads=1)
    assert set(got) == {"all", "one digit", "two digits"} and all(0.0 <= v <= 1.0 for v in got.values())
    assert min(got["one digit"], got["two digits"]) <= got["all"] <= max(got["one digit"], got["two digits"])
    assert set(facts(model, max_a=45, max_b=9, n=10, threads=1)) == {"all", "one digit"}
    main(["--facts", model, "--max-b", "19"])
    assert "facts right, of 1,000 (a in [-45, 45], b in [0, 19]): all " in capsys.readouterr().out
