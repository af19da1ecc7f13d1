"""Every reward function of the registry, on hand-made completions."""

from __future__ import annotations

import math

import pytest

from r1flow.config import compose
from r1flow.sampling.rewards import REWARDS, combined_rewards, get_reward

ITEM = {"id": "x", "family": "chain_sum", "answer": "-4",
        "question": "State the final answer to the following arithmetic problem: 4 - 1 - 7 =",
        "metadata": {"expression": "4 - 1 - 7", "num_terms": 3, "num_digits": 1}}
GOOD = "3 - 7 =\n-4\n</think>\nThe answer is <answer>-4</answer>."
WRONG = "3 - 7 =\n4\n</think>\nThe answer is <answer>4</answer>."
NOFORMAT = "3 - 7 = -4, the answer is -4"


def call(name, completions, lengths=None, **kw):
    return REWARDS[name](completions, [ITEM] * len(completions), lengths or [10] * len(completions),
                         [False] * len(completions), **kw)


def test_accuracy_uses_the_task_verifier():
    assert call("accuracy", [GOOD, WRONG, NOFORMAT]) == [1.0, 0.0, 0.0]


def test_format_accepts_prefilled_think():
    assert call("format", [GOOD, "<think>\n" + GOOD, NOFORMAT, GOOD + "</think>"]) == [1.0, 1.0, 0.0, 0.0]


def test_tag_count_partial_credit():
    assert call("tag_count", [GOOD]) == [1.0]
    assert call("tag_count", ["x </think> y"]) == [0.5]  # prefilled <think> + </think>
    assert call("tag_count", ["x </think> y"], prefilled=False) == [0.25]
    assert call("tag_count", [NOFORMAT]) == [0.25]


def test_language_consistency_latin_and_cjk():
    item_zh = dict(ITEM, question="计算 4 - 1 - 7 的结果")
    fn = REWARDS["language"]
    assert fn([GOOD], [ITEM]) == [1.0], "pure arithmetic has no words: consistent"
    assert fn(["first subtract then 3 - 7 </think> ok"], [ITEM]) == [1.0]
    assert fn(["先 减 then add </think>"], [item_zh]) == [pytest.approx(2 / 4)]
    assert fn(["先减后加 </think>"], [item_zh]) == [1.0]
    assert fn(["先减 then </think>"], [ITEM]) == [pytest.approx(1 / 3)]


def test_cosine_length_scaling():
    short, long = call("cosine_length", [GOOD, GOOD], lengths=[0, 100], max_length=100)
    assert short == pytest.approx(1.0) and long == pytest.approx(0.5)
    mid = call("cosine_length", [GOOD], lengths=[50], max_length=100)[0]
    assert mid == pytest.approx(0.5 + 0.25 * (1 + math.cos(math.pi / 2)))
    w_short, w_long = call("cosine_length", [WRONG, WRONG], lengths=[0, 100], max_length=100)
    assert w_short == pytest.approx(-1.0) and w_long == pytest.approx(-0.5)


def test_repetition_penalty():
    assert call("repetition", ["a b c d e f"]) == [0.0]
    looped = call("repetition", ["a b c a b c a b c"])[0]
    assert looped == pytest.approx(-1.0 * (1 - 3 / 7))
    assert call("repetition", ["a b"]) == [0.0]


def test_overlong_soft_penalty():
    vals = call("overlong", [GOOD] * 4, lengths=[80, 88, 92, 120], max_length=96, buffer=16)
    assert vals == [0.0, pytest.approx(-0.5), pytest.approx(-0.75), -1.0]  # 0 up to 80, linear to -1 at 96


def test_combined_rewards_weights_and_switch_off():
    total, parts = combined_rewards({"accuracy": 1.0, "format": 0.5, "language": 0.0}, {}, [GOOD, WRONG],
                                    [ITEM, ITEM], [10, 10], [False, False])
    assert total == [1.5, 0.5] and set(parts) == {"accuracy", "format"}
    with pytest.raises(ValueError, match="unknown reward"):
        get_reward("nope")


def test_reward_names_and_their_models_are_checked_before_compute():
    from r1flow.sampling.rewards import check_rewards

    with pytest.raises(ValueError, match="reasoning_rl.rewards: unknown reward 'nope'"):
        check_rewards("reasoning_rl", compose(["+reasoning_rl.rewards.nope=1.0"]).reasoning_rl, set())
    # a reward model's reward needs that model upstream: only all-scenario RL reads the reward models
    cfg = compose(["+reasoning_rl.rewards.helpfulness_rm=1.0"])
    with pytest.raises(ValueError, match="the helpfulness_rm stage's model, which reasoning_rl does not read"):
        check_rewards("reasoning_rl", cfg.reasoning_rl, set())
    check_rewards("all_scenario_rl", compose([]).all_scenario_rl, {"helpfulness_rm", "harmlessness_rm"})


@pytest.mark.parametrize("override, says", [
    ("+reasoning_rl.reward_kwargs.overlong={max_lenght: 96}",
     "reasoning_rl.reward_kwargs.overlong: reward 'overlong' takes no 'max_lenght' (it takes: max_length, buffer)"),
    ("+reasoning_rl.reward_kwargs.cosine_lenght={max_length: 96}",
     "reasoning_rl.reward_kwargs: unknown reward 'cosine_lenght'"),
    ("+reasoning_rl.reward_kwargs.accuracy={strict: true}", "reward 'accuracy' takes no 'strict' (it takes: nothing)"),
])
def test_reward_keyword_arguments_are_checked_against_each_rewards_signature(override, says):
    from r1flow.sampling.rewards import check_rewards

    with pytest.raises(ValueError) as info:
        check_rewards("reasoning_rl", compose([override]).reasoning_rl, set())
    assert says in str(info.value)
    check_rewards("reasoning_rl", compose(["+reasoning_rl.reward_kwargs.overlong={max_length: 96, buffer: 8}"])
                  .reasoning_rl, set())
