"""JSONL data files with content digests, and code digests of stages.

Every data file the pipeline writes is recorded with a sha256 of its bytes (MLflow logs it as the
dataset's digest); every row read back is validated, and a malformed one fails with the file and
line number in the message.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE_PACKAGES = ("r1flow", "stages")  # tracking/ only records; it does not change results


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


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def code_files(module: str) -> list[Path]:
    """The project source files ``module`` imports, transitively (static scan of import lines)."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = path
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            todo += [n for n in names if n.split(".")[0] in CODE_PACKAGES]
    return sorted(set(seen.values()))


def code_digest(module: str) -> str:
    """Content digest of the code a stage runs: a Snakemake param, so editing it reruns the stage."""
    h = hashlib.sha256()
    for path in code_files(module):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]
