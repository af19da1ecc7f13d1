"""Data stage: prompts of every split, cold-start SFT data and — in the embedded world — the
tokenizer and the pretraining corpus. Reasoning prompts come from reasoning-gym families (the
embedded world) or from a table of problems (``data.source=files``, r1flow/data/build.py);
non-reasoning data from the embedded world or from files (``data.general_files``).

    python -m stages.data [experiment=smoke] [data.n_heldout=2000]

Outputs (in ``io.data_dir``): train/heldout/hard/validation.jsonl (reasoning-gym items; validation,
disjoint from held-out, is what in-training checks read), cold_start.jsonl
(chat messages in R1's readable format), general_train/general.jsonl (non-reasoning items: train and
held-out) with general_sft.jsonl (answered directly, no CoT; requests for a secret refused),
safety_train/safety.jsonl (requests for a secret), general_validation/safety_validation.jsonl, helpfulness_/harmlessness_{train,heldout}.jsonl
(reward-model preference pairs: prompt, chosen, rejected), and for ``model.init=scratch`` tokenizer/ and
pretrain_corpus.jsonl; manifest.json lists every file with its sha256 digest.
"""

from __future__ import annotations

import logging
from pathlib import Path

from r1flow.data.build import general_file_splits, source_files, table_splits
from r1flow.harness.entry import StageContext, stage_main
from r1flow.harness.files import file_digest, write_json, write_jsonl
from r1flow.sampling.prompts import R1_ZERO_TEMPLATE
from r1flow.world.corpus import (
    QA_LAYOUTS,
    assistant_content,
    cold_start_rows,
    corpus_shares,
    general_sft_rows,
    make_general_split,
    make_split,
    pretraining_corpus,
)
from r1flow.world.preferences import harmlessness_pairs, helpfulness_pairs, safety_items
from r1flow.world.tasks import FilterLog, direct_response, scripted, trace
from r1flow.world.tokenizer import build_tokenizer

log = logging.getLogger("r1flow.data")
EVAL_FILES = ("heldout", "validation", "hard", "general", "safety", "general_validation", "safety_validation")


def reasoning_splits(data, filters: FilterLog) -> tuple[dict[str, list[dict]], list[dict]]:
    """The reasoning splits, and the cold-start questions: further training-split items, distinct
    from the RL prompts. ``filters`` counts what the item filters kept and dropped for each split;
    a family's option that they (nearly) filter away is a config error."""
    splits = {
        "train": make_split(data, "train", data.n_train, 1, filters),
        "heldout": make_split(data, "heldout", data.n_heldout, 2, filters),
        "hard": make_split(data, "hard", data.n_hard, 3, filters),
    }
    if data.validation_permille > 0:  # the in-training checks' split, disjoint from held-out
        splits["validation"] = make_split(data, "validation", data.n_validation, 9, filters)
    filters.check()
    extra = make_split(data, "train", data.n_train + data.n_cold_start, 4)
    rl_ids = {r["id"] for r in splits["train"]}
    cold = [r for r in extra if r["id"] not in rl_ids and scripted(r)][: data.n_cold_start]
    if not cold:
        raise ValueError("config error: data.families: no family has items our solver writes a cold-start trace "
                         "for (a flat arithmetic expression); add one, or use data.source=files with solutions")
    return splits, cold


def general_splits(data, splits: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Add the non-reasoning splits (train prompts, the held-out "general" split, requests for a
    secret) to ``splits``; return the reward models' preference pairs (prompt, chosen, rejected)."""
    splits["general_train"] = make_general_split(data, "train", data.n_general_train, 6)
    splits["general"] = make_general_split(data, "general", data.n_general_heldout, 7)
    splits["safety_train"], splits["safety"] = safety_items(data, "train"), safety_items(data, "safety")
    if data.validation_permille > 0:  # all-scenario RL's in-training checks
        splits["general_validation"] = make_general_split(data, "general_validation", data.n_general_validation, 10)
        splits["safety_validation"] = safety_items(data, "safety_validation")
    gen_train, gen_held = splits["general_train"], splits["general"]
    n_benign = 4 * len(splits["safety_train"])  # benign prompts with and without a leak
    return {
        "helpfulness_train": helpfulness_pairs(gen_train, data.seed + 11),
        "helpfulness_heldout": helpfulness_pairs(gen_held, data.seed + 12),
        "harmlessness_train": harmlessness_pairs(splits["safety_train"], gen_train[:n_benign], data.seed + 13),
        "harmlessness_heldout": harmlessness_pairs(splits["safety"], gen_held[: 4 * len(splits["safety"])],
                                                   data.seed + 14),
    }


def world_tokenizer(data, out: Path, splits: dict, cold_items: list[dict], prefs: dict):
    """The tiny world's tokenizer over every text the world holds; an unknown token is a config error."""
    texts = [r["question"] for rows in splits.values() for r in rows]
    texts += [assistant_content(r["metadata"]["expression"], answer_format=r["answer_format"]) for r in cold_items[:50]]
    texts += [direct_response(r["answer"]) for r in splits.get("general_train", [])[:50]]
    texts += [r[k] for rows in prefs.values() for r in rows for k in ("chosen", "rejected")]
    texts += [R1_ZERO_TEMPLATE, *QA_LAYOUTS]
    if data.check_frac:  # the words of a checking line
        texts.append(trace("4 - 1 - 7", check=(1, 1)))
    tok = build_tokenizer(texts)
    tok.save_pretrained(out / "tokenizer")
    unk = sum(tok(t, add_special_tokens=False)["input_ids"].count(tok.unk_token_id) for t in texts)
    if unk:
        raise ValueError(f"config error: data: the tokenizer leaves {unk} unknown tokens in the task texts")
    log.info("tokenizer: %d tokens", len(tok))
    return tok


def pretraining_files(data, out: Path, splits: dict, cold_items: list[dict], prefs: dict) -> dict:
    """The tokenizer and the pretraining corpus of a model built from scratch."""
    tok = world_tokenizer(data, out, splits, cold_items, prefs)
    qa = [r for r in make_split(data, "train", int(data.pretrain_docs * data.pretrain_qa_frac), 5) if scripted(r)]
    general = (make_general_split(data, "train", int(data.pretrain_docs * data.pretrain_general_frac), 8)
               if data.general_families and data.pretrain_general_frac else [])
    docs = pretraining_corpus(data, qa, general)
    shares = corpus_shares(docs, tok)
    write_json(out / "pretrain_corpus_shares.json", shares)
    log.info("pretraining corpus: %s", "; ".join(f"{k} {s['docs']:.1%} of documents, {s['tokens']:.1%} of tokens"
                                                 for k, s in shares.items()))
    return write_jsonl(out / "pretrain_corpus.jsonl", docs)


def world_files(data, out: Path, scratch: bool) -> dict:
    """The embedded world's files: reasoning-gym splits (with ``filters.json``: per split and family,
    the items drawn, kept and dropped by each filter), its cold start, its general data."""
    filters = FilterLog()
    splits, cold_items = reasoning_splits(data, filters)
    summary = filters.summary()
    write_json(out / "filters.json", summary)
    for split, families in summary.items():
        log.info("%s: %s", split, "; ".join(f"{f} kept {c['kept']} of {c['drawn']} drawn, dropped {c['dropped']}"
                                            for f, c in families.items()))
    prefs = general_splits(data, splits) if data.general_families else {}
    for rows in (*splits.values(), cold_items):
        for r in rows:
            r["verifier"] = "safety" if r["family"] == "safety" else "reasoning_gym"
            r["answer_format"] = str(data.answer_format)
    files = {name: write_jsonl(out / f"{name}.jsonl", rows) for name, rows in {**splits, **prefs}.items()}
    if data.general_families:
        general_rows = general_sft_rows(splits["general_train"] + splits["safety_train"], str(data.answer_format))
        files["general_sft"] = write_jsonl(out / "general_sft.jsonl", general_rows)
    cold_rows = cold_start_rows(cold_items, data.hurried_frac, data.seed + 7, str(data.answer_format), data.check_frac,
                                data.check_fix_frac)
    files["cold_start"] = write_jsonl(out / "cold_start.jsonl", cold_rows)
    if scratch:
        files["pretrain_corpus"] = pretraining_files(data, out, splits, cold_items, prefs)
    return files


def table_files(data, out: Path) -> dict:
    """A table of problems' files (data.source=files) and the decontamination report."""
    splits, cold_rows, report = table_splits(data)
    write_json(out / "decontamination.json", report)
    files = {name: write_jsonl(out / f"{name}.jsonl", rows) for name, rows in splits.items()}
    files["cold_start"] = write_jsonl(out / "cold_start.jsonl", cold_rows)
    return files


@stage_main("data")
def main(ctx: StageContext) -> dict:
    cfg, data, out = ctx.cfg, ctx.cfg.data, Path(ctx.out_dir)
    if data.source == "files":
        files = table_files(data, out)
    else:
        files = world_files(data, out, cfg.model.init == "scratch")
    if data.general_files.sft is not None:
        general, prefs, sft_rows = general_file_splits(data)
        files |= {name: write_jsonl(out / f"{name}.jsonl", rows) for name, rows in {**general, **prefs}.items()}
        files["general_sft"] = write_jsonl(out / "general_sft.jsonl", sft_rows)
    for name, path in source_files(data).items():  # the user's own files, with their digests: lineage's roots
        ctx.run.log_dataset(path, name=f"{cfg.name}/source/{name}", digest=file_digest(path), context="source")
    for name, info in files.items():
        context = "eval" if name in EVAL_FILES or name.endswith("_heldout") else "train"
        ctx.run.log_dataset(info["path"], name=f"{cfg.name}/{name}", digest=info["digest"], context=context,
                            num_rows=info["rows"])
    for report in ("decontamination.json", "filters.json"):  # what the tables' or the world's filters dropped
        if (out / report).is_file():
            ctx.run.log_artifact(str(out / report))
    write_json(out / "manifest.json", files)
    ctx.run.log_artifact(str(out / "manifest.json"))
    return {"files": {k: {"rows": v["rows"], "digest": v["digest"]} for k, v in files.items()}}


if __name__ == "__main__":
    main()
