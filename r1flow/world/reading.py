"""How the tiny world's checkpoints read their questions, by the number of terms of the question's
expression: the share of responses whose reasoning starts by copying the expression ("copied"), and
pass@1. Every worked answer of the world starts with that copy, and at 1 M parameters reading a 4- or
5-term expression out of a question is the skill that decides most answers (docs/tiny_world.md).

    python -m r1flow.world.reading results/tiny results/tiny-seed1 [--labels base_on_r1_zero,r1_zero]
    python -m r1flow.world.reading --probe results/tiny/pretrain/model --data results/tiny/data

The first form reads the evaluations of runs (their ``samples.jsonl``, held-out split); the second
samples a checkpoint greedily on the validation prompts (``--template``: R1-Zero's by default, the
one a base is prompted with), the split on which the world is tuned. Rows whose item states no
expression (the general tasks) are left out.

    python -m r1flow.world.reading --arithmetic results/tiny/pretrain/model

reads a base's arithmetic as its corpus writes it: greedy continuations of expressions of the
validation region, each after the end-of-document token as documents follow one another in
pretraining, by number of terms: how often the first rewrite (``4 - 3 + 4 =`` -> ``1 + 4``) is
right whole, in its new value and in the rest of the line, and how often the same operation written
alone as a fact (``4 - 3 =``) is right.

    python -m r1flow.world.reading --facts results/tiny/pretrain/model --max-a 99 --max-b 19

reads how many facts ``a + b`` / ``a - b`` a base knows, a from [-max_a, max_a] and b from [0,
max_b] (the corpus's ``data.pretrain_fact_max_a`` / ``_max_b``; the result within the tokenizer's
range), greedy, each after the end-of-document token: the share right where b has one digit and
where it has two.
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from r1flow.harness.files import read_jsonl
from r1flow.world.tasks import max_abs_value, next_operation, random_expression, solve_steps, split_region

LABELS = ("base_on_r1_zero", "r1_zero", "cold_start_sft", "reasoning_rl", "general_sft", "all_scenario_rl",
          "student_medium", "student_small")


def copies(response: str, expression: str) -> bool:
    """Whether the reasoning's first non-empty line is the expression, as the world's traces start."""
    lines = [line.strip() for line in response.split("</think>")[0].splitlines() if line.strip()]
    return bool(lines) and lines[0] == f"{expression} ="


def by_terms(rows: list[dict], items: dict[str, dict]) -> dict[int, dict[str, float]]:
    """Per number of terms: prompts, the share of responses that copy the expression, and pass@1
    (the mean over responses: every prompt has the same number of samples). ``rows``: graded samples
    (``id``, ``response``, ``correct``); ``items``: the split's rows by id."""
    seen: dict[int, set] = defaultdict(set)
    copied: dict[int, list[bool]] = defaultdict(list)
    right: dict[int, list[bool]] = defaultdict(list)
    for row in rows:
        meta = items[row["id"]].get("metadata", {})
        if "expression" not in meta or "num_terms" not in meta:
            continue
        terms = int(meta["num_terms"])
        seen[terms].add(row["id"])
        copied[terms].append(copies(row["response"], meta["expression"]))
        right[terms].append(bool(row["correct"]))
    return {t: {"prompts": len(seen[t]), "copied": sum(copied[t]) / len(copied[t]),
                "pass@1": sum(right[t]) / len(right[t])} for t in sorted(seen)}


def evaluation(run_dir: Path, label: str, split: str = "heldout") -> dict[int, dict[str, float]] | None:
    """``by_terms`` of one evaluation of a run (None: the run has no such evaluation)."""
    samples = run_dir / "eval" / label / "samples.jsonl"
    if not samples.is_file():
        return None
    return by_terms([r for r in read_jsonl(samples) if r["split"] == split], split_items(run_dir, split))


@cache
def split_items(run_dir: Path, split: str) -> dict[str, dict]:
    """A run's split by item id (read once for all of its evaluations)."""
    return {it["id"]: it for it in read_jsonl(run_dir / "data" / f"{split}.jsonl")}


@contextmanager
def sampler(checkpoint: str, threads: int):
    """(tokenizer, the HF backend's generator) of ``checkpoint``, sampling on ``threads`` torch
    threads; the caller's thread count is restored afterwards (a test worker's, a script's)."""
    import torch

    from r1flow.config.base import ModelConfig
    from r1flow.harness.models import load_model, load_tokenizer
    from r1flow.sampling.rollout import HFGenerator

    tok = load_tokenizer(checkpoint)
    generator = HFGenerator(load_model(checkpoint, ModelConfig()), tok, progress=False)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield tok, generator
    finally:
        torch.set_num_threads(before)


def probe(checkpoint: str, data_dir: Path, template: str = "r1_zero", max_new_tokens: int = 96,
          threads: int = 2) -> dict[int, dict[str, float]]:
    """``by_terms`` of greedy responses of ``checkpoint`` to the validation prompts."""
    from r1flow.sampling.evaluation import evaluate_split
    from r1flow.sampling.prompts import item_prompt
    from r1flow.sampling.rollout import SamplingParams

    items = read_jsonl(data_dir / "validation.jsonl")
    params = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens)
    with sampler(checkpoint, threads) as (tok, generator):  # the evaluate stage's sampling and grading
        _, rows = evaluate_split(generator, items, [item_prompt(tok, it, template) for it in items], params)
    return by_terms(rows, {it["id"]: it for it in items})


def table(results: dict[str, dict[int, dict[str, float]]]) -> str:
    """A markdown table: one row per name, copied and pass@1 (%) per number of terms."""
    terms = sorted({t for r in results.values() for t in r})
    head = ["| | " + " | ".join(f"copied: {t} terms" for t in terms) + " | "
            + " | ".join(f"pass@1: {t} terms" for t in terms) + " |",
            "|---|" + "---|" * (2 * len(terms))]
    cell = lambda r, t, k: f"{100 * r[t][k]:.1f} %" if t in r else "—"  # noqa: E731
    return "\n".join(head + [f"| {name} | " + " | ".join(cell(r, t, "copied") for t in terms) + " | "
                             + " | ".join(cell(r, t, "pass@1") for t in terms) + " |" for name, r in results.items()])


def first_rewrite(expression: str, continuation: str) -> dict[str, bool]:
    """Whether the first line of ``continuation`` (of ``expression =``) is the first rewrite: whole,
    its new value, the rest of the line."""
    want = solve_steps(expression)[1].split()
    at = next_operation(expression.split()) - 1  # where the rewrite's new value stands
    got = continuation.lstrip("\n").split("\n")[0].removesuffix(" =").split()
    return {"rewrite": got == want, "value": len(got) > at and got[at] == want[at],
            "rest": got[:at] + got[at + 1 :] == want[:at] + want[at + 1 :]}


def arithmetic(checkpoint: str, n: int = 200, terms: tuple[int, ...] = (3, 4, 5), seed: int = 7,
               threads: int = 2) -> dict[int, dict[str, float]]:
    """Per number of terms, over ``n`` expressions of the validation region (one-digit terms, mostly
    sums and differences as in the corpus, every number within the tokenizer's range): the share of
    first rewrites right whole, in their new value and in the rest of the line, and of the same
    operation right as a fact."""
    from r1flow.config.data import DataConfig
    from r1flow.sampling.rollout import SamplingParams

    rng, defaults = random.Random(seed), DataConfig()
    exprs: dict[int, list[str]] = {}
    for t in terms:
        exprs[t] = []
        while len(exprs[t]) < n:
            e = random_expression(rng, t, "+-" if rng.random() < 0.7 else "+-*")
            if (max_abs_value(solve_steps(e)) <= defaults.max_abs
                    and split_region(e, defaults.heldout_permille, defaults.validation_permille) == "validation"):
                exprs[t].append(e)
    chains = [e for t in terms for e in exprs[t]]
    facts = [" ".join(e.split()[i - 1 : i + 2]) for e in chains for i in [next_operation(e.split())]]
    greedy = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_new_tokens=24)
    with sampler(checkpoint, threads) as (tok, generator):  # each chain, then its operation alone
        texts = [c[0].text for c in generator.generate([f"{tok.eos_token}{e} =\n" for e in chains]
                                                       + [f"{tok.eos_token}{f} =" for f in facts], greedy)]
    out, k = {}, 0
    for t in terms:
        marks = [first_rewrite(e, texts[k + j]) for j, e in enumerate(exprs[t])]
        right = [texts[len(chains) + k + j].strip().split("\n")[0] == solve_steps(facts[k + j])[-1] for j in range(n)]
        out[t] = {m: sum(x[m] for x in marks) / n for m in ("rewrite", "value", "rest")} | {"fact": sum(right) / n}
        k += n
    return out


def facts(checkpoint: str, max_a: int, max_b: int, n: int = 1000, seed: int = 11,
          threads: int = 2) -> dict[str, float]:
    """The share of ``n`` random facts ``a op b =`` (op + or -, drawn as the corpus draws them) that
    the checkpoint completes right: ``all``, and ``one digit`` / ``two digits`` by b's size (absent
    when none was drawn)."""
    from r1flow.config.data import DataConfig
    from r1flow.sampling.rollout import SamplingParams

    rng, max_abs = random.Random(seed), DataConfig().max_abs
    drawn: list[tuple[str, int]] = []
    while len(drawn) < n:
        a, op, b = rng.randint(-max_a, max_a), rng.choice("+-"), rng.randint(0, max_b)
        if abs(a + b if op == "+" else a - b) <= max_abs:
            drawn.append((f"{a} {op} {b}", b))
    greedy = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_new_tokens=4)
    with sampler(checkpoint, threads) as (tok, generator):  # a two-term chain answers on the next line
        texts = [c[0].text for c in generator.generate([f"{tok.eos_token}{f} =" for f, _ in drawn], greedy)]
    right: dict[str, list[bool]] = {"all": [], "one digit": [], "two digits": []}
    for (fact, b), text in zip(drawn, texts):
        ok = text.strip().split("\n")[0] == solve_steps(fact)[-1]
        right["all"].append(ok)
        right["one digit" if b < 10 else "two digits"].append(ok)
    return {size: sum(r) / len(r) for size, r in right.items() if r}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", type=Path, help="results directories of runs (results/tiny ...)")
    ap.add_argument("--labels", default=",".join(LABELS), help="evaluations to read, comma-separated")
    ap.add_argument("--probe", nargs="+", default=[], help="checkpoints to sample greedily on validation")
    ap.add_argument("--data", type=Path, help="the data directory of --probe (its validation.jsonl)")
    ap.add_argument("--template", default="r1_zero", choices=("r1_zero", "chat"), help="--probe's prompt template")
    ap.add_argument("--arithmetic", nargs="+", default=[], help="checkpoints whose chain arithmetic to read")
    ap.add_argument("--facts", nargs="+", default=[], help="checkpoints whose facts 'a op b' to read")
    ap.add_argument("--max-a", type=int, default=45, help="--facts: |a| at most (data.pretrain_fact_max_a's default)")
    ap.add_argument("--max-b", type=int, default=9, help="--facts: b at most (data.pretrain_fact_max_b's default)")
    args = ap.parse_args(argv)
    if args.probe and args.data is None:
        ap.error("--probe needs --data")
    for checkpoint in args.arithmetic:
        print(f"{checkpoint}: right, of 200 expressions per length (first rewrite whole / its new value / the rest "
              "of its line / the operation alone as a fact)")
        for t, r in arithmetic(checkpoint).items():
            print(f"  {t} terms: " + " / ".join(f"{100 * r[m]:.1f} %" for m in ("rewrite", "value", "rest", "fact")))
    for checkpoint in args.facts:
        got = facts(checkpoint, args.max_a, args.max_b)
        print(f"{checkpoint}: facts right, of 1,000 (a in [-{args.max_a}, {args.max_a}], b in [0, {args.max_b}]): "
              + ", ".join(f"{size} {100 * share:.1f} %" for size, share in got.items()))
    results = {}
    for label in args.labels.split(","):
        for run in args.runs:
            r = evaluation(run, label)
            if r is not None:
                results[f"{label} ({run.name})"] = r
    for checkpoint in args.probe:
        results[checkpoint] = probe(checkpoint, args.data, args.template)
    if results or not (args.arithmetic or args.facts):
        print(table(results))


if __name__ == "__main__":
    main()
