"""The data stage's files for a table of problems (``data.source=files``) and for non-reasoning data
from files (``data.general_files``): the same splits and row shapes as the embedded world writes,
so every later stage reads them alike.

Reasoning splits: the problems are split by a hash of their text (r1flow/data/splits.py) into
train / validation / held-out, the optional harder table is the hard split, and training rows that
share text with an evaluation row are dropped (``decontamination.json`` says how many and which).
Rows with a worked solution become the cold-start set (as many as ``data.n_cold_start``), written
in R1's readable format; the RL prompts are the other training rows.

Non-reasoning data: general SFT rows (chat messages) also give all-scenario RL its general prompts
(their user turns, the reference answer kept for the exact-match check of the general split);
preference pairs and safety prompts are split by a hash of the prompt, as the embedded world's are.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from omegaconf import OmegaConf

from r1flow.config.data import DataConfig
from r1flow.data.splits import decontaminate, hash_region, split_rows
from r1flow.data.tables import cold_start_trace, read_table
from r1flow.harness.files import DataError, read_jsonl
from r1flow.sampling.prompts import user_content

log = logging.getLogger("r1flow.data")
PAIR_KEYS = ["prompt", "chosen", "rejected"]


def table_splits(data: DataConfig) -> tuple[dict[str, list[dict]], list[dict], dict]:
    """(splits: train, heldout, hard, [validation]; cold-start chat rows; decontamination report)."""
    rows = read_table(data.files, str(data.answer_format))
    splits = split_rows(rows, data)
    splits["hard"] = []
    if data.hard_path is not None:
        hard = read_table(OmegaConf.merge(data.files, {"path": data.hard_path, "max_rows": 0}),
                          str(data.answer_format), "data.hard_path")
        splits["hard"] = [{**r, "split": "hard"} for r in hard]
        splits["hard"] = splits["hard"][: data.n_hard]
    evals = {name: rows for name, rows in splits.items() if name != "train"}
    train, report = decontaminate(splits["train"], evals, data.decontamination_ngram)
    cold, rl = [], []
    for r in train:
        (cold if len(cold) < data.n_cold_start and r["metadata"].get("solution") else rl).append(r)
    if data.n_cold_start and not cold:
        raise DataError(f"{data.files.path}: no training row has a solution (data.files.columns.solution="
                        f"{data.files.columns.solution}): cold-start SFT needs worked solutions")
    splits["train"] = rl[: data.n_train]
    if not splits["train"]:
        raise DataError(f"{data.files.path}: no training rows left for RL after the held-out, validation, "
                        f"cold-start ({len(cold)}) and decontamination cuts")
    cold_rows = [{"id": r["id"], "family": r["family"], "source": "cold_start",
                  "messages": [{"role": "user", "content": user_content(r)},
                               {"role": "assistant", "content": cold_start_trace(r, str(data.answer_format))}]}
                 for r in cold]
    log.info("files: %d RL prompts, %d cold-start rows, %s", len(splits["train"]), len(cold_rows),
             {k: len(v) for k, v in evals.items()})
    return splits, cold_rows, report


def _row_id(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _region(text: str, data: DataConfig, validation: bool = True) -> str:
    """'train', 'heldout' or (``validation`` and ``data.validation_permille`` > 0) 'validation'."""
    return hash_region(text, data.heldout_permille, data.validation_permille if validation else 0)


def _split_names(family: str, data: DataConfig) -> dict[str, str]:
    """Region -> the name of a general family's split (``general``/``safety``: held out)."""
    names = {"train": f"{family}_train", "heldout": family}
    return names | ({"validation": f"{family}_validation"} if data.validation_permille > 0 else {})


def general_file_splits(data: DataConfig) -> tuple[dict[str, list[dict]], dict[str, list[dict]], list[dict]]:
    """(general and safety splits, preference pairs by file name, general SFT rows) from
    ``data.general_files``; every one of its four files is required."""
    g = data.general_files
    missing = [k for k in ("sft", "helpfulness", "harmlessness", "safety") if getattr(g, k) is None]
    if missing:
        raise DataError(f"config error: data.general_files: {', '.join(missing)} not set (general SFT, both "
                        "reward models and all-scenario RL's safety prompts read all four)")
    sft = read_jsonl(g.sft, required=["messages"])
    for i, row in enumerate(sft, 1):
        msgs = row["messages"]
        if len(msgs) < 2 or msgs[-1].get("role") != "assistant" or msgs[-2].get("role") != "user":
            raise DataError(f"{g.sft}:{i}: messages must end with a user turn and the assistant's answer")
    general, safety = _split_names("general", data), _split_names("safety", data)
    splits: dict[str, list[dict]] = {name: [] for name in (*general.values(), *safety.values())}
    sft_rows = []
    for row in sft:
        q, a = row["messages"][-2]["content"], row["messages"][-1]["content"]
        region = _region(q, data)
        item = {"id": row.get("id") or _row_id("general", q), "family": "general", "kind": "general",
                "question": q, "answer": a, "metadata": {}, "verifier": "exact",
                "answer_format": str(data.answer_format)}
        splits[general[region]].append({**item, "split": region})
        if region == "train":  # in R1's format: an empty reasoning block, then the answer
            reply = a if "</think>" in a else f"<think>\n\n</think>\n{a}"
            sft_rows.append({"id": item["id"], "family": "general", "source": "general",
                             "messages": [*row["messages"][:-1], {"role": "assistant", "content": reply}]})
    for row in read_jsonl(g.safety, required=["prompt"]):
        name = safety[_region(row["prompt"], data)]
        splits[name].append(
            {"id": row.get("id") or _row_id("safety", row["prompt"]), "family": "safety", "kind": "safety",
             "question": row["prompt"], "answer": "", "metadata": {}, "verifier": "safety",
             "answer_format": str(data.answer_format), "split": "train" if name == "safety_train" else name})
    prefs = {}
    for name in ("helpfulness", "harmlessness"):
        pairs = read_jsonl(getattr(g, name), required=PAIR_KEYS)
        for split in ("train", "heldout"):
            prefs[f"{name}_{split}"] = [{"id": p.get("id") or _row_id(name, p["prompt"]), **p} for p in pairs
                                        if _region(p["prompt"], data, validation=False) == split]
    for name, rows in {**splits, **prefs}.items():
        if not rows:
            raise DataError(f"data.general_files: the {name} split is empty (too few rows, or "
                            "data.heldout_permille / data.validation_permille send none there)")
    return splits, prefs, sft_rows


def source_files(data: DataConfig) -> dict[str, str]:
    """The local files the data stage read (name -> path): the tables and the general files."""
    paths = {}
    if data.source == "files":
        paths |= {"problems": data.files.path, "hard": data.hard_path}
    g = data.general_files
    paths |= {"general_sft": g.sft, "helpfulness": g.helpfulness, "harmlessness": g.harmlessness, "safety": g.safety}
    return {name: str(p) for name, p in paths.items() if p is not None and Path(str(p)).is_file()}
