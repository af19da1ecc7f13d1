"""The shape the code keeps: files that can be read in one sitting, functions that fit on a screen,
and a repository that refers to nothing outside itself."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / p for p in out if (ROOT / p).is_file()]


def test_no_source_file_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in tracked("*.py", "*.smk", "Snakefile")
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, long


def test_no_function_over_60_lines():
    long = {}
    for path in tracked("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = n
    assert not long, long


def test_nothing_refers_to_files_outside_the_repository():
    """Every Markdown file a tracked file names exists in the repository, and no path climbs out of it
    (users have only the repository: docs cite docs/ or the paper)."""
    files = [p for p in tracked() if p.suffix != ".png"]
    from r1flow.dag import STAGES

    ours = {p.name for p in tracked("*.md")} | {out for stage in STAGES for out in stage.outputs}  # + reports
    found = []
    for p in files:
        text = p.read_text(errors="ignore")
        found += [f"{p.relative_to(ROOT)}: {name}" for name in set(re.findall(r"[\w.-]+\.md\b", text))
                  if name.rsplit("/", 1)[-1] not in ours and not name.startswith(".")]
        found += [f"{p.relative_to(ROOT)}: {m}" for m in set(re.findall(r"(?<![\w.])\.\./[\w-]+", text))
                  if not (p.parent / m).resolve().is_relative_to(ROOT) or not (p.parent / m).exists()]
    assert not found, found
