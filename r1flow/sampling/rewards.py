"""Reward functions: pure functions in a registry, selected and weighted by config.

Each takes the batch of completions and returns one float per completion::

    fn(completions: list[str], items: list[dict], lengths: list[int], truncated: list[bool], **kwargs)

``items`` are the task rows (question, answer, family, metadata); ``lengths`` are completion lengths
in tokens. The accuracy reward is the task's verifier — the same call evaluation and rejection
sampling make. Adding a reward is a function here and a config line, e.g.::

    rewards: {accuracy: 1.0, format: 1.0, language: 0.1}
    reward_kwargs: {overlong: {max_length: 96, buffer: 16}}
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable

from r1flow.sampling.verify import format_of, format_ok, is_correct

RewardFn = Callable[..., list[float]]
REWARDS: dict[str, RewardFn] = {}
MODEL_REWARDS: set[str] = set()  # rewards scored by the reward-model stage of the same name


def reward(name: str, model: bool = False) -> Callable[[RewardFn], RewardFn]:
    """Register ``fn`` as reward ``name``; ``model``: it is the score of the reward-model stage
    ``name`` (the GRPO stage must read that stage upstream, and passes its scorer as ``scorer``)."""

    def register(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        if model:
            MODEL_REWARDS.add(name)
        return fn

    return register


def get_reward(name: str) -> RewardFn:
    if name not in REWARDS:
        raise ValueError(f"config error: rewards: unknown reward {name!r} (known: {', '.join(sorted(REWARDS))})")
    return REWARDS[name]


BATCH_ARGS = ("completions", "items", "lengths", "truncated", "scorer")  # what the stage passes, not the config


def reward_options(name: str) -> list[str]:
    """The keyword arguments reward ``name`` takes from ``reward_kwargs`` (its signature's, past the batch)."""
    params = inspect.signature(get_reward(name)).parameters.values()
    return [p.name for p in params if p.name not in BATCH_ARGS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_rewards(stage: str, g, reward_models: set[str]) -> None:
    """Every reward a GRPO section names exists, a reward model's reward has its model upstream, and
    every keyword argument in ``reward_kwargs`` is one its reward takes (each reward swallows extra
    keywords, ``**_``, so a misspelt one would silently leave the default in place)."""
    for name, options in g.reward_kwargs.items():
        if name not in REWARDS:
            raise ValueError(f"config error: {stage}.reward_kwargs: unknown reward {name!r} "
                             f"(known: {', '.join(sorted(REWARDS))})")
        unknown = sorted(set(options) - set(reward_options(name)))
        if unknown:
            raise ValueError(f"config error: {stage}.reward_kwargs.{name}: reward {name!r} takes no "
                             f"{', '.join(map(repr, unknown))} (it takes: {', '.join(reward_options(name)) or 'nothing'})")
    for key in ("rewards", "general_rewards"):
        for name in g[key]:
            if name not in REWARDS:
                raise ValueError(f"config error: {stage}.{key}: unknown reward {name!r} "
                                 f"(known: {', '.join(sorted(REWARDS))})")
            if name in MODEL_REWARDS and name not in reward_models:
                raise ValueError(f"config error: {stage}.{key}: reward {name!r} is the score of the {name} stage's "
                                 f"model, which {stage} does not read (reward models it reads: "
                                 f"{', '.join(sorted(reward_models)) or 'none'})")


@reward("accuracy")
def accuracy(completions, items, lengths=None, truncated=None, **_) -> list[float]:
    """1 if the extracted final answer is correct by the task's own verifier (score == 1.0)."""
    return [1.0 if is_correct(item, c) else 0.0 for c, item in zip(completions, items)]


def general_format_ok(response: str) -> bool:
    """A non-reasoning answer: one </think> (the reasoning may be empty), then a non-empty summary."""
    return response.count("</think>") == 1 and response.count("<think>") <= 1 and bool(
        response.split("</think>", 1)[1].strip())


@reward("format")
def format_reward(completions, items=None, lengths=None, truncated=None, **_) -> list[float]:
    """1 if reasoning is closed by one </think> (the opening tag may be pre-filled by the template)
    and the summary holds exactly one answer in the item's answer format (<answer>…</answer> or
    \\boxed{…}); for a general prompt (``kind`` general or safety) one </think> and a non-empty summary."""
    items = items or [{}] * len(completions)
    return [1.0 if (general_format_ok(c) if it.get("kind") in ("general", "safety") else format_ok(c, format_of(it)))
            else 0.0 for c, it in zip(completions, items)]


@reward("helpfulness_rm", model=True)
def helpfulness_rm(completions, items, lengths=None, truncated=None, scorer=None, **_) -> list[float]:
    """The helpfulness reward model's score of the summary (a Bradley–Terry logit). Requests for a
    secret (``kind`` safety) get 0: helpfulness is judged on tasks that have an answer."""
    if scorer is None:
        raise ValueError("config error: the helpfulness_rm reward needs the helpfulness_rm stage upstream (its scorer)")
    rows = [i for i, it in enumerate(items) if it.get("kind") != "safety"]
    out = [0.0] * len(completions)
    if rows:
        for i, v in zip(rows, scorer([items[i]["question"] for i in rows], [completions[i] for i in rows])):
            out[i] = v
    return out


@reward("harmlessness_rm", model=True)
def harmlessness_rm(completions, items, lengths=None, truncated=None, scorer=None, **_) -> list[float]:
    """The harmlessness reward model's probability that the whole response is safe."""
    if scorer is None:
        raise ValueError("config error: the harmlessness_rm reward needs the harmlessness_rm stage upstream (its scorer)")
    return [1.0 / (1.0 + math.exp(-s)) for s in scorer([it["question"] for it in items], completions)]


@reward("tag_count")
def tag_count(completions, items=None, lengths=None, truncated=None, prefilled: bool = True, **_) -> list[float]:
    """0.25 for each tag present exactly once (<think> may be absent when the template pre-fills it)."""
    out = []
    for c in completions:
        score = 0.0
        n_open = c.count("<think>")
        score += 0.25 if n_open == 1 or (prefilled and n_open == 0) else 0.0
        score += 0.25 if c.count("</think>") == 1 else 0.0
        score += 0.25 if c.count("<answer>") == 1 else 0.0
        score += 0.25 if c.count("</answer>") == 1 else 0.0
        out.append(score)
    return out


_LATIN = re.compile(r"[A-Za-z\u00C0-\u024F]")
_CJK = re.compile(r"[\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF\uF900-\uFAFF]")


# A response that checks or doubts a step: the "aha moment" words of R1-Zero (§2.2.4, Table 3), or a
# check line ("check: 7 - 3 = 4"); the GRPO stages log the share of rollouts holding one per step
REFLECTIVE = re.compile(r"\b(wait|check|verify|recheck|hmm|again)\b", re.I)


def script_of(word: str) -> str | None:
    """'latin', 'cjk' or None (numbers, symbols) for one word."""
    cjk, latin = len(_CJK.findall(word)), len(_LATIN.findall(word))
    if cjk == latin == 0:
        return None
    return "cjk" if cjk >= latin else "latin"


def _words(text: str) -> list[str]:
    # CJK has no spaces: every CJK character counts as a word
    return re.findall(r"[\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF\uF900-\uFAFF]|[^\s\u3040-\u9FFF]+", text)


@reward("language")
def language_consistency(completions, items, lengths=None, truncated=None, **_) -> list[float]:
    """R1's language-consistency reward: the share of the CoT's words written in the prompt's script
    (Latin or CJK). A CoT with no words (pure arithmetic) is consistent: 1."""
    out = []
    for c, item in zip(completions, items):
        prompt_scripts = [s for s in map(script_of, _words(item["question"])) if s]
        target = max(set(prompt_scripts), key=prompt_scripts.count) if prompt_scripts else "latin"
        cot = c.split("</think>", 1)[0]
        scripts = [s for s in map(script_of, _words(cot)) if s]
        out.append(1.0 if not scripts else sum(s == target for s in scripts) / len(scripts))
    return out


@reward("cosine_length")
def cosine_length(completions, items, lengths, truncated=None, max_length: int = 1000,
                  min_value_correct: float = 0.5, max_value_correct: float = 1.0,
                  min_value_wrong: float = -1.0, max_value_wrong: float = -0.5, **_) -> list[float]:
    """Cosine length scaling (Kimi 1.5 / open-r1): short correct answers earn most; long wrong
    answers are penalised least (so the model is not pushed to stop thinking when it is wrong)."""
    out = []
    for c, item, n in zip(completions, items, lengths):
        cos = math.cos(math.pi * min(n, max_length) / max_length)
        if is_correct(item, c):
            lo, hi = min_value_correct, max_value_correct
        else:
            lo, hi = max_value_wrong, min_value_wrong
        out.append(lo + 0.5 * (hi - lo) * (1.0 + cos))
    return out


@reward("repetition")
def repetition_penalty(completions, items=None, lengths=None, truncated=None, ngram_size: int = 3,
                       max_penalty: float = -1.0, **_) -> list[float]:
    """N-gram repetition penalty: ``max_penalty * (1 - unique n-grams / n-grams)`` over words."""
    out = []
    for c in completions:
        words = c.split()
        grams = [tuple(words[i : i + ngram_size]) for i in range(len(words) - ngram_size + 1)]
        out.append(0.0 if not grams else max_penalty * (1.0 - len(set(grams)) / len(grams)))
    return out


@reward("overlong")
def overlong_penalty(completions, items=None, lengths=None, truncated=None, max_length: int = 1024,
                     buffer: int = 128, **_) -> list[float]:
    """DAPO's soft overlong penalty on the length L in tokens: 0 up to max_length − buffer, then
    linear down to −1 at max_length, −1 beyond."""
    out = []
    for n in lengths:
        if n <= max_length - buffer:
            out.append(0.0)
        elif n <= max_length:
            out.append((max_length - buffer - n) / buffer)
        else:
            out.append(-1.0)
    return out


def combined_rewards(weights: dict[str, float], kwargs: dict[str, dict], completions, items, lengths,
                     truncated) -> tuple[list[float], dict[str, list[float]]]:
    """Weighted sum of the configured rewards (weight 0 switches one off), and each reward's raw
    values (for logging)."""
    weights = {name: w for name, w in weights.items() if w != 0}
    parts = {name: get_reward(name)(completions, items, lengths, truncated, **kwargs.get(name, {}))
             for name in weights}
    total = [sum(weights[name] * parts[name][i] for name in weights) for i in range(len(completions))]
    return total, parts
