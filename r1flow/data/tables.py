"""The user's table of problems as our task rows, read with Hugging Face ``datasets``.

A table is a local JSONL, Parquet or CSV file (or a directory or glob of them), or a hub dataset id
on a machine with a network. Its columns are mapped onto ``question``, ``answer`` and, when it has
worked solutions, ``metadata.solution`` (the cold-start trace). Every gold answer must be readable by
the row's verifier: a file whose answers mostly cannot be read (a wrong column, a wrong
``answer_pattern``) stops the data stage with examples, instead of training on rewards that are
always zero; a few unreadable rows are dropped and counted.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import re
from pathlib import Path

from r1flow.config.data import FileSourceConfig
from r1flow.data.splits import normalize
from r1flow.harness.files import DataError
from r1flow.sampling.prompts import summary_line

log = logging.getLogger(__name__)

BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
# GSM8K's calculator annotations, e.g. "<<48/2=24>>": markup for a tool, not prose
CALCULATOR_RE = re.compile(r"<<[^<>=]*=[^<>]*>>")
_EXTENSION_RE = re.compile(r"\.[A-Za-z][A-Za-z0-9]*$")
_GLOB_CHARS = set("*?[")


def looks_local(path: str) -> bool:
    """Whether ``path`` names a local file rather than a hub id ("owner/name"): it starts with /, .
    or ~, has a file extension (".5" of "NuminaMath-1.5" is none), a glob character, a backslash or
    more than one slash."""
    return (path.startswith(("/", ".", "~")) or bool(_EXTENSION_RE.search(path)) or path.count("/") > 1
            or "\\" in path or bool(_GLOB_CHARS & set(path)))


def _local_files(src: FileSourceConfig, key: str) -> tuple[str, list[str]]:
    """The ``datasets`` builder and the files of a local ``src.path`` (a file, directory or glob)."""
    path = Path(src.path).expanduser()
    if path.is_dir():
        files = sorted(str(f) for f in path.rglob("*") if f.is_file() and f.suffix in BUILDERS)
    else:
        files = sorted(glob.glob(str(path)))
    if not files:
        raise DataError(f"{src.path}: no such file, or no .jsonl/.json/.parquet/.csv file in it ({key}.path)")
    if src.format != "auto":
        return src.format, files
    builders = {BUILDERS.get(Path(f).suffix) for f in files}
    if len(builders) != 1 or None in builders:
        raise DataError(f"{src.path}: cannot tell the format from the extensions "
                        f"{sorted({Path(f).suffix for f in files})}; set {key}.format (json, parquet or csv)")
    return builders.pop(), files


def _load(src: FileSourceConfig, key: str):
    """The dataset of ``src`` (its ``src.split``), capped at ``src.max_rows``."""
    if Path(src.path).expanduser().exists() or looks_local(src.path):
        builder, files = _local_files(src, key)
        args, kwargs = (builder,), {"data_files": {src.split: files}}
    else:
        args, kwargs = (src.path, src.subset), {}
    from datasets import load_dataset  # imported after the path check: a missing file fails fast

    try:
        ds = load_dataset(*args, split=src.split, **kwargs)
    except Exception as e:  # datasets raises many types: report them all with the path and key
        raise DataError(f"{src.path}: cannot be read as a dataset ({key}.path, {key}.format, {key}.split): "
                        f"{type(e).__name__}: {e}") from e
    if src.max_rows:
        ds = ds.select(range(min(src.max_rows, len(ds))))
    return ds


def _columns(ds, src: FileSourceConfig, key: str) -> dict[str, str]:
    """Our field -> the file's column, every mapped column checked to exist."""
    wanted = {"problem": src.columns.problem, "answer": src.columns.answer,
              "solution": src.columns.solution, "id": src.columns.id}
    for field, column in wanted.items():
        if column is not None and column not in ds.column_names:
            raise DataError(f"{src.path}: {key}.columns.{field}={column!r} is not a column of the file; "
                            f"its columns are {ds.column_names}")
    return {field: column for field, column in wanted.items() if column is not None}


def _text(value) -> str:
    return "" if value is None else str(value)


def _family(src: FileSourceConfig) -> str:
    """``src.family``, else the file's stem (of a glob: its directory's name)."""
    if src.family:
        return src.family
    path = Path(src.path.rstrip("/"))
    while _GLOB_CHARS & set(path.name):
        path = path.parent
    return path.stem


def _parse_row(values: dict[str, str], src: FileSourceConfig, pattern, gold_parses) -> tuple[dict | None, str]:
    """(question, answer, solution) of one row, or None and why it is unusable."""
    problem = values["problem"].strip()
    if not problem:
        return None, "empty problem"
    text, before = values["answer"], ""
    if pattern is not None:
        match = pattern.search(text)
        if match is None:
            return None, f"answer_pattern does not match {text[-80:]!r}"
        text, before = match.group(1), text[: match.start()]
    gold = text.strip()
    if not gold:
        return None, "empty gold answer"
    if not gold_parses(src.verifier, gold):
        return None, f"verifier {src.verifier!r} cannot read the gold answer {gold[:80]!r}"
    solution = None
    if "solution" in values:
        solution = before if src.columns.solution == src.columns.answer else values["solution"]
        solution = CALCULATOR_RE.sub("", solution).strip() or None
    return {"question": problem, "answer": gold, "solution": solution}, ""


def read_table(src: FileSourceConfig, answer_format: str, key: str = "data.files") -> list[dict]:
    """Task rows ``{"id", "family", "question", "answer", "metadata", "verifier", "answer_format"}``
    of the table ``src`` (``key``: its config key, named in errors; e.g. data.hard_path).

    Rows whose gold answer is missing, unmatched by ``src.answer_pattern`` or unreadable by the
    verifier, and rows without a problem, are dropped and counted; more than ``src.max_unparseable``
    of them raises ``DataError`` with examples (rows numbered from 1 in file order, header excluded).
    Repeated problems (after normalisation) keep the first.
    """
    from r1flow.sampling.verify import get_verifier, gold_parses

    try:
        get_verifier(src.verifier)
    except ValueError as e:
        raise DataError(f"{src.path}: {key}.verifier: {e}") from None
    ds = _load(src, key)
    columns = _columns(ds, src, key)
    table = ds.select_columns(sorted(set(columns.values()))).to_dict()
    pattern = re.compile(src.answer_pattern, re.MULTILINE) if src.answer_pattern else None
    family, fmt = _family(src), str(answer_format)
    rows, bad, seen, duplicates = [], [], set(), 0
    for i in range(len(ds)):
        values = {field: _text(table[column][i]) for field, column in columns.items()}
        parsed, why = _parse_row(values, src, pattern, gold_parses)
        if parsed is None:
            bad.append((i + 1, why))
            continue
        norm = normalize(parsed["question"])
        if norm in seen:
            duplicates += 1
            continue
        seen.add(norm)
        digest = hashlib.sha1(parsed["question"].encode()).hexdigest()[:12]
        rows.append({"id": values["id"] if values.get("id") else f"{family}-{digest}", "family": family,
                     "question": parsed["question"], "answer": parsed["answer"],
                     "metadata": {"solution": parsed["solution"]} if parsed["solution"] else {},
                     "verifier": src.verifier, "answer_format": fmt})
    _check_unparseable(bad, len(ds), src, key)
    if duplicates:
        log.info("%s: dropped %d repeated problems (same text after normalisation)", src.path, duplicates)
    return rows


def _check_unparseable(bad: list[tuple[int, str]], n: int, src: FileSourceConfig, key: str) -> None:
    """Raise when the unusable rows exceed ``src.max_unparseable`` of the ``n`` read, else log them."""
    if n == 0:
        raise DataError(f"{src.path}: no rows ({key}.path, {key}.split)")
    share = len(bad) / n
    if share > src.max_unparseable:
        examples = "; ".join(f"row {row}: {why}" for row, why in bad[:3])
        raise DataError(f"{src.path}: {len(bad)} of {n} rows ({share:.1%}) have no usable problem or gold answer, "
                        f"more than {key}.max_unparseable={src.max_unparseable} (check {key}.columns, "
                        f"{key}.answer_pattern and {key}.verifier); e.g. {examples}")
    if bad:
        log.warning("%s: dropped %d of %d rows (%.1f%%) without a usable problem or gold answer, e.g. row %d: %s",
                    src.path, len(bad), n, 100 * share, bad[0][0], bad[0][1])


def cold_start_trace(row: dict, answer_format: str) -> str | None:
    """The assistant turn of a cold-start example written from the row's solution: the solution as
    the reasoning, then the answer in ``<answer>`` tags or ``\\boxed{}``; None without a solution."""
    solution = row.get("metadata", {}).get("solution")
    if not solution:
        return None
    return f"<think>\n{solution}\n</think>\n{summary_line(row['answer'], str(answer_format))}"
