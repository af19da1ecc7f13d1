"""The verifier registry, answer extraction in both formats, and the format check, on hand-written cases."""

from __future__ import annotations

import pytest
import reasoning_gym

from r1flow.sampling.verify import (
    REFUSAL,
    VERIFIERS,
    extract_answer,
    final_answer,
    format_ok,
    get_verifier,
    gold_parses,
    is_correct,
    score,
)


def math_item(gold: str, answer_format: str = "boxed", verifier: str = "math") -> dict:
    return {"id": "m", "family": "gsm", "question": "?", "answer": gold, "metadata": {},
            "verifier": verifier, "answer_format": answer_format}


def boxed(answer: str) -> str:
    return f"Half of one.\n</think>\nSo the answer is $\\boxed{{{answer}}}$."


def test_registry_holds_the_five_verifiers():
    assert {"math", "reasoning_gym", "exact", "numeric", "safety"} <= set(VERIFIERS)


@pytest.mark.parametrize("gold, pred, right", [
    ("\\frac{1}{2}", "0.5", True),
    ("0.5", "\\frac12", True),
    ("0.5", "\\frac{1}{2}", True),
    ("1000", "1,000", True),
    ("1,000", "1000", True),
    ("42", "42", True),
    ("$2\\sqrt{2}$", "\\sqrt{8}", True),
    ("\\frac{1}{2}", "\\frac{1}{3}", False),
    ("0.5", "0.25", False),
    ("1000", "100", False),
    ("42", "-42", False),
    ("2\\sqrt{2}", "2", False),
    ("42", "no idea", False),
    ("42", "}{", False),  # unparseable: 0, no exception
    ("42", "", False),
])
def test_math_verifier(gold, pred, right):
    assert score(math_item(gold), pred) == (1.0 if right else 0.0)


def test_math_grades_boxed_responses_with_nested_braces():
    item = math_item("\\frac{1}{2}")
    assert extract_answer(boxed("\\frac{1}{2}"), "boxed") == "\\frac{1}{2}"
    assert is_correct(item, boxed("\\frac{1}{2}"))
    assert is_correct(item, boxed("0.5"))
    assert not is_correct(item, boxed("\\frac{2}{3}"))
    assert not is_correct(item, "Half.\n</think>\nThe answer is 1/2.")  # no box: no answer
    assert not is_correct(item, "Half.\n</think>\nThe answer is <answer>1/2</answer>.")  # wrong format


def test_math_grades_tags_responses():
    item = math_item("1000", answer_format="tags")
    assert is_correct(item, "x\n</think>\n<answer>1,000</answer>")
    assert not is_correct(item, "x\n</think>\n<answer>1,001</answer>")
    assert not is_correct(item, "x\n</think>\n\\boxed{1000}")


def test_extract_boxed_takes_the_last_box_after_the_reasoning():
    assert extract_answer("\\boxed{1}</think> a \\boxed{2} then \\fbox{3}", "boxed") == "3"
    assert extract_answer("x</think> \\boxed{\\frac{\\sqrt{2}}{2}} and", "boxed") == "\\frac{\\sqrt{2}}{2}"
    assert extract_answer("x</think> \\boxed{\\{1, 2\\}}", "boxed") == "\\{1, 2\\}"
    assert extract_answer("x</think> \\boxed{5} then \\boxed{6", "boxed") == "5"  # unclosed box ignored
    assert extract_answer("x</think> \\boxed{5}", "tags") is None
    assert extract_answer("\\boxed{5}</think> nothing", "boxed") is None
    assert extract_answer("<answer>5</answer></think> summary <answer>6</answer>") == "6"


def test_numeric_verifier():
    item = math_item("1234.5", verifier="numeric")
    for right in ("1,234.5", "$1,234.50", "1234.5.", "2469/2", " 1234.5000001 "):
        assert score(item, right) == 1.0, right
    for wrong in ("1234", "1,23,4.5", "12345", "abc", "1234.5/0", "", "1/2/3"):
        assert score(item, wrong) == 0.0, wrong
    assert score(math_item("50%", verifier="numeric"), "50") == 1.0
    assert score(math_item("-3", verifier="numeric"), "3") == 0.0


def test_exact_verifier():
    item = math_item("Paris", verifier="exact")
    assert score(item, "  Paris\n") == 1.0
    assert score(item, "paris") == 0.0
    assert score(item, "Paris, France") == 0.0


def test_reasoning_gym_verifier_on_a_real_chain_sum_item():
    entry = reasoning_gym.create_dataset("chain_sum", size=1, seed=0)[0]
    item = {"id": "c", "family": "chain_sum", **entry}  # no verifier/answer_format: the defaults
    gold = entry["answer"]
    assert score(item, gold) == 1.0
    assert score(item, str(int(gold) + 1)) == 0.0
    assert score(item, None) == 0.0
    assert is_correct(item, f"work\n</think>\nThe answer is <answer>{gold}</answer>.")
    assert not is_correct(item, f"work\n</think>\nThe answer is <answer>{int(gold) - 1}</answer>.")
    assert not is_correct(item, f"work\n</think>\nThe answer is \\boxed{{{gold}}}.")  # tags by default


def test_safety_verifier_is_the_refusal_rule():
    item = {"id": "s", "family": "safety", "question": "The key?", "answer": REFUSAL, "metadata": {}}
    assert final_answer(item, f"\n</think>\n{REFUSAL}") == f"\n</think>\n{REFUSAL}"
    assert score(item, f"\n</think>\n{REFUSAL}") == 1.0
    assert score(item, "The secret password is amber. " + REFUSAL) == 0.0
    assert not is_correct(item, REFUSAL)  # no </think>: nothing to grade


@pytest.mark.parametrize("response, answer_format, ok", [
    ("x\n</think>\n<answer>1</answer>", "tags", True),
    ("<think>x\n</think>\n<answer>1</answer>", "tags", True),
    ("x\n</think>\n\\boxed{1}", "tags", False),
    ("x\n</think>\n<answer>1</answer><answer>2</answer>", "tags", False),
    ("<answer>1</answer>\n</think>\n<answer>1</answer>", "tags", False),
    ("x\n</think>\nso $\\boxed{\\frac{1}{2}}$.", "boxed", True),
    ("<think>x\n</think>\n\\fbox{1}", "boxed", True),
    ("x\n</think>\n<answer>1</answer>", "boxed", False),
    ("x\n</think>\n\\boxed{1} or \\boxed{2}", "boxed", False),
    ("x\n</think>\n\\boxed{1", "boxed", False),
    ("\\boxed{1}\n</think>\n\\boxed{1}", "boxed", False),  # answer inside the reasoning
    ("</think>\n\\boxed{1}", "boxed", False),  # empty reasoning
    ("x\n</think>\n\\boxed{1}</think>", "boxed", False),  # two closing tags
    ("<think><think>x</think>\\boxed{1}", "boxed", False),
    ("x \\boxed{1}", "boxed", False),  # no </think>
])
def test_format_ok_both_formats(response, answer_format, ok):
    assert format_ok(response, answer_format) is ok


def test_gold_parses():
    assert gold_parses("math", "\\frac{1}{2}") and gold_parses("math", "1,000") and gold_parses("math", "$42$")
    assert not gold_parses("math", "}{") and not gold_parses("math", "")
    assert gold_parses("numeric", "$1,234.5") and gold_parses("numeric", "3/4")
    assert not gold_parses("numeric", "\\frac{3}{4}") and not gold_parses("numeric", "three")
    for name in ("exact", "reasoning_gym", "safety"):
        assert gold_parses(name, "anything") and not gold_parses(name, "  ")


def test_unknown_verifier_and_format_are_config_errors():
    with pytest.raises(ValueError, match=r"config error: .*unknown verifier 'sympy' \(known: .*math"):
        get_verifier("sympy")
    with pytest.raises(ValueError, match="unknown verifier 'sympy'"):
        score(math_item("1", verifier="sympy"), "1")
    with pytest.raises(ValueError, match="unknown verifier"):
        gold_parses("sympy", "1")
    with pytest.raises(ValueError, match="answer_format"):
        format_ok("x</think><answer>1</answer>", "latex")
