"""The config reference, generated from the schema: ``python -m r1flow.config.reference`` writes
docs/config.md (a test checks that it is current). Each section lists its knobs with their
defaults — the section's own, e.g. ``r1_zero.template`` is ``r1_zero`` — their meaning and, where
the paper gives one, the paper's value."""

from __future__ import annotations

import dataclasses
import sys
from enum import Enum
from pathlib import Path

from r1flow.config.root import RootConfig

HEADER = """# Config reference

Generated from the schema (r1flow/config/) by `python -m r1flow.config.reference`; do not edit.
Every knob is set on the command line as `section.key=value` (`python -m stages.<stage> ...`) or in
an experiment file (conf/experiment/). "Paper" cites DeepSeek-R1 (arXiv:2501.12948): `§` numbers
are the sections of its first version; "v2" marks the hyperparameters its second version (the
Nature 2025 paper) added.
"""


def _text(text: str | None) -> str:
    return (text or "").replace("<", "&lt;").replace("|", "\\|")


def _show(value) -> str:
    if isinstance(value, Enum):
        value = value.value
    text = repr(value) if isinstance(value, str) else str(value)
    return f"`{text}`".replace("|", "\\|")


def _rows(obj, prefix: str = "") -> list[str]:
    rows = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            rows += _rows(value, f"{prefix}{f.name}.")
            continue
        paper = f.metadata.get("paper")
        rows.append(f"| `{prefix}{f.name}` | {_show(value)} | {_text(f.metadata.get('help'))} | {_text(paper)} |")
    return rows


def reference() -> str:
    root = RootConfig()
    top, sections = [], []
    for f in dataclasses.fields(root):
        value = getattr(root, f.name)
        if not dataclasses.is_dataclass(value):
            top.append(f"| `{f.name}` | {_show(value)} | {_text(f.metadata['help'])} | {_text(f.metadata.get('paper'))} |")
            continue
        title = f"## `{f.name}`\n\n{f.metadata['help']}" + (f" Paper: {f.metadata['paper']}." if f.metadata.get("paper")
                                                          else "")
        doc = _text(" ".join((type(value).__doc__ or "").split()))
        sections.append(f"{title}\n\n{doc}\n\n| key | default | meaning | paper |\n|---|---|---|---|\n"
                        + "\n".join(_rows(value, f"{f.name}.")) + "\n")
    head = "## Top level\n\n| key | default | meaning | paper |\n|---|---|---|---|\n" + "\n".join(top) + "\n"
    return "\n".join([HEADER, head, *sections])


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "docs" / "config.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(reference())
    print(f"wrote {out}")
