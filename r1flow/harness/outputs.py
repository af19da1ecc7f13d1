"""A stage's outputs change only when an attempt succeeds.

An attempt writes into ``<out_dir>/.attempt/`` (what stage code sees as ``ctx.out_dir``); only once
it has succeeded are its files moved into ``<out_dir>``, each replacing the previous attempt's file
of the same name (and a file the previous success published that this one did not make is
removed), and ``done.json`` written last. A stage run by hand or as a sweep trial that fails or is
killed leaves the previous good outputs as they were, and never half-written ones.

Under Snakemake the declared outputs are Snakemake's: it removes them before it reruns a job on the
local executor, and after a job that failed. Keeping them (its ``update`` flag, ``--keep-incomplete``)
is not safe: Snakemake then records the failed job as finished with the new params and code, so a
later run would take the old outputs for current ones.

The attempt directory also holds the training checkpoints (``ckpt/``): a rerun with the same config
resumes from them (r1flow/harness/checkpoints.py). Everything else an earlier attempt left there is
removed when the next one starts, so a published output is always the last attempt's own.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

ATTEMPT = ".attempt"
KEEP = ("ckpt",)  # what the next attempt may resume from
MANIFEST = ".published"  # the names the last publish moved into the output directory


def attempt_dir(out_dir: Path) -> Path:
    """``out_dir``'s attempt directory, emptied of what an earlier attempt wrote except its
    checkpoints."""
    work = Path(out_dir) / ATTEMPT
    work.mkdir(parents=True, exist_ok=True)
    for entry in work.iterdir():
        if entry.name not in KEEP:
            _remove(entry)
    return work


def publish(work: Path, out_dir: Path) -> None:
    """Move a successful attempt's outputs from ``work`` into ``out_dir``, each replacing the file or
    directory of the same name; remove what the previous publish moved there that this attempt did
    not make (only that: the directory may hold other jobs' outputs and Hydra's logs), and ``work``
    (checkpoints included)."""
    out_dir, manifest = Path(out_dir), Path(out_dir) / MANIFEST
    names = sorted(e.name for e in Path(work).iterdir() if e.name not in KEEP)
    before = json.loads(manifest.read_text()) if manifest.is_file() else []
    for name in sorted(set(before) - set(names)):
        _remove(out_dir / name)
    for name in names:
        entry, target = Path(work) / name, out_dir / name
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f".{entry.name}.replaced")
            _remove(old)
            target.rename(old)
            entry.rename(target)
            shutil.rmtree(old)
        else:
            os.replace(entry, target)
    manifest.write_text(json.dumps(names))
    shutil.rmtree(work)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
