"""JSON and JSONL data files with content digests.

Every data file the pipeline writes is recorded with a sha256 of its bytes (MLflow logs it as the
dataset's digest); every row read back is validated, and a malformed one fails with the file and
line number in the message.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path


class DataError(ValueError):
    """A data file that cannot be used, with its path and line in the message."""


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> dict:
    """Write rows atomically; return ``{"path", "rows", "digest"}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            n += 1
    os.replace(tmp, path)
    return {"path": str(path), "rows": n, "digest": file_digest(path)}


def read_jsonl(path: str | Path, required: Iterable[str] = (), allow_empty: bool = False) -> list[dict]:
    """Read a JSONL file; a row that is not a JSON object with the ``required`` keys raises
    ``DataError("<path>:<line>: …")``, and so does an empty file unless ``allow_empty``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found (run the data stage first)")
    required = tuple(required)
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON row: {e.msg}") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: row is not a JSON object")
            missing = [k for k in required if k not in row]
            if missing:
                raise DataError(f"{path}:{lineno}: row lacks required key(s) {missing}")
            rows.append(row)
    if not rows and not allow_empty:
        raise DataError(f"{path}: no rows")
    return rows


def read_json(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return json.loads(path.read_text())


def write_json(path: str | Path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
