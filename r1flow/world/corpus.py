"""The embedded tiny world: prompts of every split, cold-start data, and the pretraining corpus.

Everything here is procedurally generated from reasoning-gym families and our step-by-step solver,
deterministically from ``data.seed``. See r1flow/world/tasks.py for the split rule that keeps held-out
questions (and their rewrites) out of every training corpus.
"""

from __future__ import annotations

import hashlib
import random

from tqdm import tqdm

from r1flow.config.data import DataConfig
from r1flow.sampling.prompts import R1_ZERO_TEMPLATE, user_content
from r1flow.world.preferences import refusal_response
from r1flow.world.tasks import (
    FamilySpec,
    FilterLog,
    cot_response,
    direct_response,
    draw_check,
    generate_general_items,
    generate_items,
    num_terms,
    random_expression,
    region_of,
    solve_steps,
    trace,
    trainable,
)


def family_specs(data: DataConfig, general: bool = False) -> list[FamilySpec]:
    families = data.general_families if general else data.families
    return [FamilySpec(f.name, f.weight, dict(f.params), dict(f.hard_params)) for f in families]


def permille(data: DataConfig) -> tuple[int, int]:
    """The held-out and validation shares of the hash space, per mille."""
    return data.heldout_permille, data.validation_permille


def make_general_split(data: DataConfig, split: str, n: int, seed_offset: int) -> list[dict]:
    """``n`` non-reasoning items mixed across ``data.general_families``; split: train | general
    (the held-out one) | general_validation."""
    specs = family_specs(data, general=True)
    rows: list[dict] = []
    for spec, fam, count in zip(specs, data.general_families, _counts(specs, n)):
        key = f"{data.seed}:{seed_offset}:{spec.name}".encode()
        seed = int.from_bytes(hashlib.sha256(key).digest()[:3], "big") * 1000
        rows += generate_general_items(spec, region_of(split), count, seed, permille(data), fam.top_words)
    for r in rows:
        r["split"] = split
    random.Random(data.seed + seed_offset).shuffle(rows)
    return rows


def general_sft_rows(items: list[dict], answer_format: str = "tags") -> list[dict]:
    """Non-reasoning SFT data: the question answered directly, without a CoT; a request for a
    secret is refused."""
    return [{"id": it["id"], "family": it["family"], "source": "general",
             "messages": [{"role": "user", "content": it["question"]},
                          {"role": "assistant", "content": refusal_response() if it["family"] == "safety"
                           else direct_response(it["answer"], answer_format)}]}
            for it in items]


def _counts(specs: list[FamilySpec], n: int) -> list[int]:
    total = sum(s.weight for s in specs)
    counts = [int(round(n * s.weight / total)) for s in specs]
    counts[0] += n - sum(counts)
    return counts


def make_split(data: DataConfig, split: str, n: int, seed_offset: int, filters: FilterLog | None = None) -> list[dict]:
    """``n`` items mixed across families by weight. ``split``: train | heldout | hard | validation.
    ``filters`` (if given) counts what the item filters kept and dropped."""
    specs = family_specs(data)
    rows: list[dict] = []
    for spec, count in zip(specs, _counts(specs, n)):
        params = spec.hard_params if split == "hard" else spec.params
        key = f"{data.seed}:{seed_offset}:{spec.name}".encode()
        seed = int.from_bytes(hashlib.sha256(key).digest()[:3], "big") * 1000
        counts = filters.of(split, spec.name) if filters is not None else None
        rows += list(generate_items(spec, params, region_of(split), count, seed, data.heldout_permille, data.max_abs,
                                    counts, data.validation_permille))
    for r in rows:
        r["split"] = split
    random.Random(data.seed + seed_offset).shuffle(rows)
    return rows


def assistant_content(expr: str, answer_format: str = "tags", hurry: bool = False,
                      check: tuple[int, int] | None = None) -> str:
    """The assistant turn of a worked example in R1's readable format (``hurry``: a hurried trace;
    ``check``: one step checked, r1flow/world/tasks.py ``checked``)."""
    reasoning, summary = cot_response(expr, answer_format, hurry, check)
    return f"<think>\n{reasoning}\n</think>\n{summary}"


def cold_start_rows(items: list[dict], hurried_frac: float = 0.0, seed: int = 0,
                    answer_format: str = "tags", check_frac: float = 0.0, check_fix_frac: float = 0.0) -> list[dict]:
    """Cold-start SFT data: chat messages whose answer is written by the deterministic solver, a
    share ``hurried_frac`` of them (chosen by ``seed``) in the hurried style and a share ``check_frac``
    of the careful ones checking a step, as in every worked trace of the world (``data.hurried_frac``,
    ``data.check_frac``): all are readable and end with the right answer."""
    rng = random.Random(seed)
    rows = []
    for it in items:
        expr = it["metadata"]["expression"]
        hurry = rng.random() < hurried_frac
        check = None if hurry else draw_check(rng, num_terms(expr), check_frac, check_fix_frac)
        rows.append(
            {
                "id": it["id"],
                "family": it["family"],
                "messages": [
                    {"role": "user", "content": user_content({**it, "answer_format": answer_format})},
                    {"role": "assistant", "content": assistant_content(expr, answer_format, hurry, check)},
                ],
                "hurried": hurry,
            }
        )
    return rows


# Plain-text layouts of a solved question, as exercise pages and prompt collections write them: the
# last two are dialogues in plain words with R1's tags — one in R1's readable format, one after the
# R1-Zero template (arXiv:2501.12948, Table 1) — and none uses the chat template's special tokens.
QA_LAYOUTS = (
    "Q: {question}\nA: {reasoning}",
    "Question: {question}\nSolution:\n{reasoning}\nAnswer: {answer}",
    "User: {question}\nAssistant: <think>\n{reasoning}\n</think>\nThe answer is <answer>{answer}</answer>.",
    R1_ZERO_TEMPLATE.replace("{prompt}", "{question}") + "\n{reasoning}\n</think>\n<answer>{answer}</answer>",
)


def qa_text(item: dict, layout: str, hurry: bool = False, check: tuple[int, int] | None = None) -> str:
    """A training question and its worked rewrites as plain question/answer text."""
    reasoning = trace(item["metadata"]["expression"], hurry, check)
    answer = reasoning.rsplit("\n", 1)[-1]
    return layout.format(question=item["question"].rstrip(), reasoning=reasoning, answer=answer)


def word_list_text(item: dict) -> str:
    """A general item as a base model would read it: a word list, then the same list reversed."""
    return f"{', '.join(reversed(item['answer'].split(', ')))}\n{item['answer']}"


def pretraining_corpus(data: DataConfig, qa_items: list[dict], general_items: list[dict] = ()) -> list[dict]:
    """What a base model reads: arithmetic facts, rewrite chains, word lists and a small share of
    question/answer text in plain layouts (training-region items only). No chat template: the chat
    format is taught by the cold-start SFT (arXiv:2501.12948 §2.3.1)."""
    rng = random.Random(data.seed + 99)
    n_facts = int(data.pretrain_docs * data.pretrain_fact_frac)
    n_qa = min(len(qa_items), int(data.pretrain_docs * data.pretrain_qa_frac))
    n_general = min(len(general_items), int(data.pretrain_docs * data.pretrain_general_frac))
    n_chains = data.pretrain_docs - n_facts - n_qa - n_general
    docs: list[dict] = []
    for _ in tqdm(range(n_facts), desc="facts", leave=False, mininterval=5):
        lines = []
        while len(lines) < 4:
            op = rng.choice(data.pretrain_ops)
            a = rng.randint(-20, 20) if op == "*" else rng.randint(-data.pretrain_fact_max_a, data.pretrain_fact_max_a)
            b = rng.randint(0, 9) if op == "*" else rng.randint(0, data.pretrain_fact_max_b)
            steps = solve_steps(f"{a} {op} {b}")
            if abs(int(steps[-1])) <= data.max_abs:
                lines.append(f"{steps[0]} = {steps[-1]}")
        docs.append({"text": "\n".join(lines), "kind": "facts"})
    chain_ops = "+-" if data.pretrain_ops == "+-" else data.pretrain_ops
    made = 0
    with tqdm(total=n_chains, desc="chains", leave=False, mininterval=5) as bar:
        while made < n_chains:
            n_terms = rng.randint(2, data.pretrain_max_terms)
            ops = "+-" if rng.random() < 0.7 else chain_ops  # mostly chain sums, some precedence
            expr = random_expression(rng, n_terms, ops)
            steps = solve_steps(expr)
            if max(abs(int(t)) for s in steps for t in s.split()[::2]) > data.max_abs:
                continue
            if not trainable(expr, *permille(data)):
                continue
            hurry = rng.random() < data.hurried_frac
            check = None if hurry else draw_check(rng, len(steps), data.check_frac, data.check_fix_frac)
            chain = trace(expr, hurry, check)
            stated = rng.random() < data.pretrain_stated_frac  # the expression stated, then worked
            docs.append({"text": f"{expr}\n{chain}" if stated else chain, "kind": "chain"})
            made += 1
            bar.update()
    for it in qa_items[:n_qa]:
        layout, hurry = rng.choice(QA_LAYOUTS), rng.random() < data.hurried_frac
        check = None if hurry else draw_check(rng, num_terms(it["metadata"]["expression"]), data.check_frac,
                                              data.check_fix_frac)
        docs.append({"text": qa_text(it, layout, hurry, check), "kind": "qa"})
    docs += [{"text": word_list_text(it), "kind": "words"} for it in general_items[:n_general]]
    rng.shuffle(docs)
    return docs


def corpus_shares(docs: list[dict], tokenizer) -> dict[str, dict[str, float]]:
    """Each kind of document's share of the corpus, in documents and in tokens."""
    lengths = [len(ids) + 1 for ids in tokenizer([d["text"] for d in docs], add_special_tokens=False)["input_ids"]]
    total = sum(lengths)
    shares: dict[str, dict[str, float]] = {}
    for d, n in zip(docs, lengths):
        s = shares.setdefault(d["kind"], {"docs": 0.0, "tokens": 0.0})
        s["docs"] += 1 / len(docs)
        s["tokens"] += n / total
    return {k: {m: round(v, 4) for m, v in s.items()} for k, s in sorted(shares.items())}
