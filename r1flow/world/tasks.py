"""The tiny world's tasks: reasoning-gym families, disjoint splits, a step-by-step solver, and the
answers written in R1's readable format (verification: r1flow/sampling/verify.py).

Splits are decided by a hash of the canonical expression (whatever the family's wording): an expression is held out when its hash
falls in the held-out region. A training item is kept only if neither its expression nor any of the
expressions its step-by-step solution rewrites it into (with three or more terms) is held out, so no
held-out question appears in any training corpus, pretraining included. Two-term facts ("4 * 9 = 36")
are the arithmetic table every corpus teaches and are not questions of any split.
"""

from __future__ import annotations

import hashlib
import json
import operator
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import reasoning_gym

from r1flow.data.splits import region
from r1flow.sampling.prompts import summary_line

_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2}


# ----------------------------------------------------------------------------------- expressions
def parse_expression(expr: str) -> list[str]:
    """'4 - 1 * -7' -> ['4', '-', '1', '*', '-7'] (terms and binary operators, space separated)."""
    tokens = expr.split()
    if len(tokens) % 2 == 0 or any(t not in _OPS for t in tokens[1::2]):
        raise ValueError(f"not a flat binary expression: {expr!r}")
    for t in tokens[::2]:
        int(t)
    return tokens


def solve_steps(expr: str) -> list[str]:
    """The rewrites of an expression, one operation at a time, ending with its value.

    '1 - 5 - 2' -> ['1 - 5 - 2', '-4 - 2', '-6']. Multiplication binds tighter; ties go left.
    """
    tokens = parse_expression(expr)
    steps = [" ".join(tokens)]
    while len(tokens) > 1:
        i = next_operation(tokens)
        value = _OPS[tokens[i]](int(tokens[i - 1]), int(tokens[i + 1]))
        tokens = tokens[: i - 1] + [str(value)] + tokens[i + 2 :]
        steps.append(" ".join(tokens))
    return steps


def next_operation(tokens: list[str]) -> int:
    """Index of the operator the next rewrite applies: the first of the highest precedence."""
    ops = tokens[1::2]
    best = max(_PRECEDENCE[o] for o in ops)
    return 2 * next(j for j, o in enumerate(ops) if _PRECEDENCE[o] == best) + 1


def scripted(item: dict) -> bool:
    """Whether our solver can write the item's worked solution (its metadata holds a flat expression)."""
    try:
        parse_expression(str(item["metadata"].get("expression", "")))
    except ValueError:
        return False
    return True


def num_terms(expr: str) -> int:
    return (len(expr.split()) + 1) // 2


def max_abs_value(steps: list[str]) -> int:
    """Largest absolute number that appears anywhere in a solution (its ``solve_steps``)."""
    return max(abs(int(n)) for step in steps for n in step.split()[::2])


def split_region(expr: str, heldout_permille: int, validation_permille: int = 0) -> str:
    """'heldout', 'validation' or 'train': the region of the expression's hash (r1flow/data/splits.py).

    The hash ignores the family, so one expression is held out under every wording of it.
    """
    canonical = " ".join(parse_expression(expr))
    return region(int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big"), heldout_permille,
                  validation_permille)


def region_of(split: str) -> str:
    """The hash region a split draws from: the validation splits' is validation, the hard, general
    and safety splits are held out."""
    return split if split in ("train", "heldout") else "validation" if split.endswith("validation") else "heldout"


def trainable(expr: str, heldout_permille: int, validation_permille: int = 0) -> bool:
    """True when neither ``expr`` nor any 3+-term rewrite of it is a held-out or validation expression."""
    return all(
        split_region(step, heldout_permille, validation_permille) == "train"
        for step in solve_steps(expr)
        if num_terms(step) >= 3
    )


# ----------------------------------------------------------------------------------- responses
def hurried(steps: list[str]) -> list[str]:
    """The steps of a hurried trace: two operations per line (the expression, every other rewrite,
    the value), as people write when they skip steps. '4 - 1 - 7 + 2' -> 4 - 1 - 7 + 2, -4 + 2, -2."""
    return [*steps[:-1:2], steps[-1]]


CHECK = "check: "  # how a checking line starts


def checked(steps: list[str], at: int, slip: int = 0) -> list[str]:
    """The lines of a careful trace that checks its rewrite ``at`` (1 <= at < len(steps)): after the
    rewrite, a line 'check: a op b = v' restates the operation it applied as a fact, and the rewrite is
    written again, from the check. ``slip`` != 0: the rewrite was first written with its new value
    off by ``slip``, and the check catches it.
    '4 - 1 - 7', at 1, slip 1 -> ['4 - 1 - 7', '4 - 7', 'check: 4 - 1 = 3', '3 - 7', '-4']."""
    if not 1 <= at < len(steps):
        raise ValueError(f"no rewrite {at} to check in {len(steps)} steps")
    tokens = steps[at - 1].split()
    i = next_operation(tokens)
    a, op, b = tokens[i - 1 : i + 2]
    value = _OPS[op](int(a), int(b))
    written = " ".join(tokens[: i - 1] + [str(value + slip)] + tokens[i + 2 :])
    return [*steps[:at], written, f"{CHECK}{a} {op} {b} = {value}", *steps[at:]]


def draw_check(rng: random.Random, n_steps: int, check_frac: float, fix_frac: float) -> tuple[int, int] | None:
    """Whether a careful trace of ``n_steps`` steps (an expression's ``num_terms``) checks one (a
    share ``check_frac``): (the rewrite checked, the slip the check catches: 0, or +-1 or 2 in a
    share ``fix_frac`` of them), or None.
    Draws nothing from ``rng`` when ``check_frac`` is 0, so a world without checks is unchanged."""
    if check_frac <= 0 or n_steps < 2 or rng.random() >= check_frac:
        return None
    at = rng.randint(1, n_steps - 1)
    return at, (rng.choice((-2, -1, 1, 2)) if rng.random() < fix_frac else 0)


def trace(expr: str, hurry: bool = False, check: tuple[int, int] | None = None) -> str:
    """A rewrite chain: the expression, then the remaining expression after each operation (after
    every second one when ``hurry``), then the value: '4 - 1 - 7 =\n3 - 7 =\n-4'. ``check``:
    (rewrite, slip) of :func:`checked` (careful traces only)."""
    steps = solve_steps(expr)
    if hurry and check:
        raise ValueError("a hurried trace checks no step (a check restates one operation)")
    if hurry:
        return " =\n".join(hurried(steps))
    if not check:
        return " =\n".join(steps)
    lines = checked(steps, *check)  # a line with an operation left ends with " =", a value or a check does not
    return "".join(line + (" =\n" if len(line.split()) > 1 and not line.startswith(CHECK) else "\n")
                   for line in lines[:-1]) + lines[-1]


def cot_response(expr: str, answer_format: str = "tags", hurry: bool = False,
                 check: tuple[int, int] | None = None) -> tuple[str, str]:
    """R1's readable format for a solved expression: (reasoning, summary).

    The reasoning is the expression's rewrite chain (:func:`trace`): it copies the question's
    expression, then rewrites it one operation at a time (two when ``hurry``; ``check``: one rewrite
    checked), so every line follows from the line before it by the same rules as in the pretraining
    chains. The summary gives the final answer in the data's answer format.
    '4 - 1 - 7' -> ('4 - 1 - 7 =\n3 - 7 =\n-4', 'The answer is <answer>-4</answer>.')
    """
    return trace(expr, hurry, check), summary_line(solve_steps(expr)[-1], answer_format)


# ----------------------------------------------------------------------------------- families
@dataclass(frozen=True)
class FamilySpec:
    """One reasoning-gym family as the config describes it (see conf/data/*.yaml)."""

    name: str
    weight: float
    params: dict
    hard_params: dict


def has_solver(name: str, params: dict) -> bool:
    """Whether the family's items carry a flat arithmetic ``expression`` our solver rewrites step by
    step (chain_sum, basic_arithmetic, products, ...): their cold-start traces can be scripted."""
    return scripted(reasoning_gym.create_dataset(name, size=1, seed=0, **params)[0])


def _draw(name: str, params: dict, split: str, n: int, seed: int) -> Iterator[dict]:
    """reasoning-gym items of family ``name`` in successive chunks, until the caller has its ``n``."""
    chunk, offset = max(256, 4 * n), 0
    while True:
        # reasoning-gym seeds item i with seed + i: successive chunks must not overlap
        ds = reasoning_gym.create_dataset(name, size=chunk, seed=seed + offset * chunk, **params)
        offset += 1
        if offset > 200:
            raise RuntimeError(f"could not draw {n} distinct {split} items of {name}: space too small")
        yield from ds


# Why an item drawn from reasoning-gym is not kept. The first two come from the family's params or
# data.max_abs, and are checked (FilterLog.check): when one of them drops at least its share of the
# items it sees, a configured option is (nearly) filtered away. Every non-flat item is dropped, and
# the defaults draw none, so a few percent already means an option the solver cannot serve; numbers
# above data.max_abs are dropped in ordinary configs too (6-9 % of 3-4 one-digit terms with "*").
NOT_FLAT = "not_flat"  # not a flat binary expression (parentheses, negation): no step-by-step solution
TOO_LARGE = "above_max_abs"  # a number in its solution exceeds data.max_abs
GOLD = "gold_not_by_precedence"  # reasoning-gym's answer is not the value by precedence (left to right)
DUPLICATE = "duplicate"  # an expression (question) already drawn
OTHER_SPLIT = "other_split"  # its hash puts it (or, for training, one of its rewrites) in the other split
FILTER_ORDER = (DUPLICATE, NOT_FLAT, TOO_LARGE, GOLD, OTHER_SPLIT)  # as _dropped applies them
OPTION_FILTERS = {  # reason -> (share of the items it sees that is an error, what the user reads)
    NOT_FLAT: (0.05, "is not a flat expression our step-by-step solver rewrites (parentheses or a negation): "
                     "drop the option that makes them"),
    TOO_LARGE: (0.5, "has a number above data.max_abs in its solution, so the kept items are the small ones: "
                     "lower the family's digits or terms, or raise data.max_abs"),
}


@dataclass
class FilterLog:
    """What the item filters kept and dropped, per split and family, and why (the reasons above)."""

    counts: dict[tuple[str, str], Counter] = field(default_factory=dict)

    def of(self, split: str, family: str) -> Counter:
        return self.counts.setdefault((split, family), Counter())

    def summary(self) -> dict:
        """{split: {family: {drawn, kept, dropped: {reason: n}}}} (written as data/filters.json)."""
        out: dict = {}
        for (split, family), c in sorted(self.counts.items()):
            dropped = {k: v for k, v in sorted(c.items()) if k != "kept"}
            out.setdefault(split, {})[family] = {"drawn": sum(c.values()), "kept": c["kept"], "dropped": dropped}
        return out

    def check(self) -> None:
        """A family whose items are mostly dropped by a filter of its own params (or data.max_abs) is
        an error naming them: the option it was configured for is (nearly) filtered away. A filter's
        share counts the items it saw (those the filters before it let through)."""
        for (split, family), c in sorted(self.counts.items()):
            seen = sum(c.values())
            for reason in FILTER_ORDER:
                limit, why = OPTION_FILTERS.get(reason, (None, ""))
                if limit is not None and seen and c[reason] >= limit * seen:
                    params = "hard_params" if split == "hard" else "params"
                    raise ValueError(
                        f"config error: data.families: {family}.{params}: {c[reason]} of the {seen} items "
                        f"the {reason} filter saw for the {split} split ({c[reason] / seen:.0%}) were dropped "
                        f"because each {why}; {c['kept']} kept (all of this family's counts: {dict(c)})")
                seen -= c[reason]


def generate_items(
    spec: FamilySpec, params: dict, split: str, n: int, seed: int, heldout_permille: int, max_abs: int,
    counts: Counter | None = None, validation_permille: int = 0,
) -> Iterator[dict]:
    """Yield ``n`` distinct items of region ``split`` ('train', 'heldout' or 'validation') from
    reasoning-gym; ``counts`` (if given) counts the kept items and each dropped one under its reason."""
    permille = (heldout_permille, validation_permille)
    counts = Counter() if counts is None else counts
    if n <= 0:
        return
    if not has_solver(spec.name, params):
        yield from generate_unsolved_items(spec, params, split, n, seed, permille, counts)
        return
    seen: set[str] = set()
    for entry in _draw(spec.name, params, split, n, seed):
        expr = entry["metadata"]["expression"]
        reason = _dropped(entry, expr, seen, split, permille, max_abs)
        if reason:
            counts[reason] += 1
            continue
        seen.add(expr)
        counts["kept"] += 1
        metadata = {k: v for k, v in entry["metadata"].items() if k in ("expression", "num_terms", "num_digits")}
        yield {
            "id": f"{spec.name}-{split}-{hashlib.sha1(expr.encode()).hexdigest()[:12]}",
            "family": spec.name,
            "question": entry["question"],
            "answer": str(entry["answer"]),
            "metadata": metadata,
        }
        if len(seen) >= n:
            return


def _dropped(entry: dict, expr: str, seen: set[str], split: str, permille: tuple[int, int],
             max_abs: int) -> str | None:
    """Why a drawn item of a solver family is not kept (one of the reasons above), or None."""
    if expr in seen:
        return DUPLICATE
    try:
        steps = solve_steps(expr)
    except ValueError:
        return NOT_FLAT
    if max_abs_value(steps) > max_abs:
        return TOO_LARGE
    # reasoning-gym's basic_arithmetic without parentheses computes its gold answer left to right
    # ("5 - 0 * 6" -> 30); keep only items whose gold is the value by precedence
    if steps[-1] != str(entry["answer"]):
        return GOLD
    if split != "train":
        return None if split_region(expr, *permille) == split else OTHER_SPLIT
    return None if trainable(expr, *permille) else OTHER_SPLIT


def json_metadata(metadata: dict) -> dict:
    """The JSON-storable part of a reasoning-gym item's metadata (its scorer reads it back)."""
    out = {}
    for k, v in metadata.items():
        try:
            json.dumps(v)
        except TypeError:
            continue
        out[k] = v
    return out


def generate_unsolved_items(spec: FamilySpec, params: dict, split: str, n: int, seed: int,
                            permille: tuple[int, int], counts: Counter) -> Iterator[dict]:
    """Items of a family our solver cannot rewrite (gsm_symbolic, word problems, puzzles): split by a
    hash of the question, graded by the family's own scorer, with no scripted cold-start trace."""
    seen: set[str] = set()
    for entry in _draw(spec.name, params, split, n, seed):
        q = entry["question"]
        if q in seen or general_region(q, *permille) != split:
            counts[DUPLICATE if q in seen else OTHER_SPLIT] += 1
            continue
        seen.add(q)
        counts["kept"] += 1
        yield {"id": f"{spec.name}-{split}-{hashlib.sha1(q.encode()).hexdigest()[:12]}", "family": spec.name,
               "question": q, "answer": str(entry["answer"]), "metadata": json_metadata(entry["metadata"])}
        if len(seen) >= n:
            return


def general_region(question: str, heldout_permille: int, validation_permille: int = 0) -> str:
    """The region of an item split by a hash of its question ('heldout', 'validation' or 'train')."""
    return region(int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big"), heldout_permille,
                  validation_permille)


WORD_RE = re.compile(r"[A-Za-z]+")


def generate_general_items(spec: FamilySpec, split: str, n: int, seed: int, permille: tuple[int, int],
                           top_words: int = 0) -> list[dict]:
    """``n`` distinct items of a non-reasoning family for region ``split`` ('train', 'heldout' or
    'validation'; ``permille``: the held-out and validation shares).

    ``top_words``: keep only items whose words are all among the family's ``top_words`` most
    frequent words (measured on a probe sample), so a word-level tokenizer stays small.
    """
    allowed = None
    if top_words:
        probe = reasoning_gym.create_dataset(spec.name, size=4000, seed=seed, **spec.params)
        counts = Counter(w for e in probe for w in WORD_RE.findall(e["question"]))
        allowed = {w for w, _ in counts.most_common(top_words)}
    rows, seen, offset, chunk = [], set(), 1, max(1000, 8 * n)
    while len(rows) < n:
        if offset > 200:
            raise RuntimeError(f"could not draw {n} distinct {split} items of {spec.name}: space too small")
        ds = reasoning_gym.create_dataset(spec.name, size=chunk, seed=seed + offset * chunk, **spec.params)
        offset += 1
        for entry in ds:
            q = entry["question"]
            if q in seen or general_region(q, *permille) != split:
                continue
            if allowed is not None and not set(WORD_RE.findall(q)) <= allowed:
                continue
            seen.add(q)
            rows.append({"id": f"{spec.name}-{split}-{hashlib.sha1(q.encode()).hexdigest()[:12]}",
                         "family": spec.name, "kind": "general", "question": q, "answer": str(entry["answer"]),
                         "metadata": {}})
            if len(rows) >= n:
                break
    return rows


def direct_response(answer: str, answer_format: str = "tags") -> str:
    """A non-reasoning answer in R1's format: an empty reasoning block, then the summary (R1's
    general SFT data gives trivial queries no CoT)."""
    return f"<think>\n\n</think>\n{summary_line(answer, answer_format)}"


def random_expression(rng: random.Random, n_terms: int, ops: str, max_digit: int = 9) -> str:
    """A random flat expression over one-digit terms (pretraining corpus material)."""
    parts = [str(rng.randint(0, max_digit))]
    for _ in range(n_terms - 1):
        parts += [rng.choice(ops), str(rng.randint(0, max_digit))]
    return " ".join(parts)
