"""Splits of a table of problems by hash, and decontamination of the training split.

A problem's split is decided by the sha256 of its normalised text (lowercase, whitespace collapsed,
punctuation at the ends stripped), never by its position in the file: the same problem lands in the
same split on every run and machine, whatever the order of the rows, and copies of one problem that
differ only in case or spacing share a split. Hashing alone does not keep near-duplicates apart, so
training problems that equal an evaluation problem, or share a run of ``n`` words with one, are then
dropped and counted (decontamination.json).
"""

from __future__ import annotations

import hashlib
import re
import string

from r1flow.config.data import DataConfig
from r1flow.harness.files import DataError

_EDGE_CHARS = string.punctuation + string.whitespace + "“”‘’…«»"
_WORD_RE = re.compile(r"\w+")
# config key that sets the share of each evaluation split (named when the split comes out empty)
_PERMILLE_KEY = {"heldout": "data.heldout_permille", "validation": "data.validation_permille"}
_CAP = {"heldout": "n_heldout", "validation": "n_validation"}


def normalize(text: str) -> str:
    """The key of a problem for hashing and exact matching: lowercase, runs of whitespace as one
    space, punctuation and whitespace at both ends stripped."""
    return " ".join(text.lower().split()).strip(_EDGE_CHARS)


def _hash(text: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.sha256((salt + normalize(text)).encode()).digest()[:8], "big")


def region(h: int, heldout_permille: int, validation_permille: int = 0) -> str:
    """The split of a problem whose hash is ``h`` (tables of problems and the embedded world alike):
    modulo 1000, below ``heldout_permille`` is 'heldout', the next ``validation_permille`` is
    'validation', the rest 'train'."""
    h %= 1000
    if h < heldout_permille:
        return "heldout"
    return "validation" if h < heldout_permille + validation_permille else "train"


def hash_region(text: str, heldout_permille: int, validation_permille: int) -> str:
    """The split of problem ``text``, by the sha256 of ``normalize(text)`` (see :func:`region`)."""
    return region(_hash(text), heldout_permille, validation_permille)


def split_rows(rows: list[dict], data: DataConfig) -> dict[str, list[dict]]:
    """Rows by split ("train", "heldout", and "validation" when ``data.validation_permille`` > 0),
    each ordered by a seeded hash of its question (a shuffle that does not depend on the input
    order) and tagged with ``"split"``.

    Held-out and validation are capped at ``data.n_heldout`` and ``data.n_validation``; the train
    split keeps all its rows (decontamination drops some, then the caller takes the cold-start and
    RL prompts from it). An empty split raises ``DataError`` naming the key that sizes it.
    """
    names = ["train", "heldout"] + (["validation"] if data.validation_permille > 0 else [])
    out: dict[str, list[dict]] = {name: [] for name in names}
    heldout, validation, salt = data.heldout_permille, data.validation_permille, f"{data.seed}:"
    for row in rows:
        out[hash_region(row["question"], heldout, validation)].append(row)
    where = f"{data.files.path}: " if data.files is not None else ""
    for name in names:
        if not out[name]:
            key = _PERMILLE_KEY.get(name, "data.heldout_permille + data.validation_permille")
            raise DataError(f"{where}the {name} split is empty: none of the file's {len(rows)} problems hashes "
                            f"into it ({key}; data.heldout_permille={data.heldout_permille}, "
                            f"data.validation_permille={data.validation_permille}); use a larger file or "
                            "change the shares")
        out[name].sort(key=lambda r: (_hash(r["question"], salt), str(r["id"])))
        if name in _CAP:
            out[name] = out[name][: getattr(data, _CAP[name])]
        out[name] = [{**r, "split": name} for r in out[name]]
    return out


def _ngrams(text: str, n: int) -> set[int]:
    """Hashes of the word n-grams of a normalised text (words: runs of letters and digits)."""
    words = _WORD_RE.findall(normalize(text))
    return {hash(" ".join(words[i: i + n])) for i in range(len(words) - n + 1)}


def decontaminate(train_rows: list[dict], eval_splits: dict[str, list[dict]],
                  ngram: int) -> tuple[list[dict], dict]:
    """Drop training rows whose normalised question equals an evaluation row's, or (``ngram`` > 0)
    shares a word n-gram of length ``ngram`` with one; return the kept rows and a report
    ``{"ngram", "train_rows", "kept", "dropped_exact", "dropped_ngram", "by_split", "examples"}``.

    Evaluation n-grams are held as a dict of hashes, so the cost is linear in the words of both sides.
    """
    exact: dict[str, tuple[str, str]] = {}
    grams: dict[int, tuple[str, str]] = {}
    for split, rows in eval_splits.items():
        for row in rows:
            ref = (split, str(row["id"]))
            exact.setdefault(normalize(row["question"]), ref)
            if ngram > 0:
                for g in _ngrams(row["question"], ngram):
                    grams.setdefault(g, ref)
    by_split = {split: {"exact": 0, "ngram": 0} for split in eval_splits}
    kept, examples = [], []
    for row in train_rows:
        kind, ref = "exact", exact.get(normalize(row["question"]))
        if ref is None and ngram > 0:
            kind, ref = "ngram", next((grams[g] for g in _ngrams(row["question"], ngram) if g in grams), None)
        if ref is None:
            kept.append(row)
            continue
        by_split[ref[0]][kind] += 1
        if len(examples) < 5:
            examples.append({"train_id": str(row["id"]), "eval_id": ref[1], "split": ref[0], "kind": kind})
    report = {"ngram": ngram, "train_rows": len(train_rows), "kept": len(kept),
              "dropped_exact": sum(s["exact"] for s in by_split.values()),
              "dropped_ngram": sum(s["ngram"] for s in by_split.values()),
              "by_split": by_split, "examples": examples}
    return kept, report
