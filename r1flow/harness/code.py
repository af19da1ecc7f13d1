"""Code digests: what Snakemake compares to rerun a stage when the code it runs changes.

Snakemake tracks files and params, not the Python a shell command runs, so each rule gets the
digest of its stage's code as a param. The code is the stage's entry module and every project
module it imports, transitively (a static scan of import lines), with two exceptions:

- ``tracking/`` only records: it changes no result;
- the declarations, ``r1flow/config/`` (the schema and its defaults) and ``r1flow/dag.py`` (the
  stage table): what they decide reaches a stage as its resolved config view (a rule input) and its
  command line (a param), which Snakemake compares already. Validation code therefore never
  reruns a stage, and a new knob or stage reruns only what it changes.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
CODE_PACKAGES = ("r1flow", "stages")
DECLARATIONS = ("r1flow.config", "r1flow.dag")


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_code(name: str) -> bool:
    return name.split(".")[0] in CODE_PACKAGES and not any(
        name == d or name.startswith(d + ".") for d in DECLARATIONS)


def _imports(path: Path, module: str) -> tuple[str, ...]:
    """The modules ``path`` imports (relative imports resolved against ``module``); parsed once per
    version of the file (the Snakefile asks for every rule's digest: most stages share most files)."""
    st = path.stat()
    return _parsed_imports(path, module, st.st_mtime_ns, st.st_size)


@functools.cache
def _parsed_imports(path: Path, module: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    names = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names += [base] + [f"{base}.{a.name}" for a in node.names]
    return tuple(names)


def code_files(module: str) -> list[Path]:
    """The project source files ``module`` runs: itself and what it imports, transitively."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not _is_code(name):
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = path
        todo += list(_imports(path, name))
        parent = name.rpartition(".")[0]  # importing a module runs its package's __init__
        if parent:
            todo.append(parent)
    return sorted(set(seen.values()))


def code_digest(module: str) -> str:
    """Content digest of the code a stage runs: a Snakemake param, so editing it reruns the stage."""
    h = hashlib.sha256()
    for path in code_files(module):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]
