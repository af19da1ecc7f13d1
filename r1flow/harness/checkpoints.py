"""A training stage's checkpoint directory, ``<out_dir>/ckpt``: Lightning's ``last.ckpt`` (for
resume), the digest of the config that wrote it, and the MLflow run its training logs to. A rerun
with the same config resumes from it and continues that run; a rerun with another config starts
afresh. It lives in the stage's attempt directory, which a successful stage removes once it has
published its outputs (r1flow/harness/outputs.py)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger("r1flow.checkpoints")


def last_checkpoint(out_dir: Path, config_digest: str, run_id: str | None = None) -> str | None:
    """``last.ckpt`` of an interrupted run of this stage *with the same config*, for
    ``trainer.fit(ckpt_path=...)``; checkpoints of another config are discarded. ``run_id``, the
    MLflow run this training logs to, is kept beside the checkpoints: a resumed attempt continues
    that run (``interrupted_run``)."""
    ckpt = Path(out_dir) / "ckpt"
    stamp = ckpt / "config_digest"
    if ckpt.is_dir() and (not stamp.is_file() or stamp.read_text() != config_digest):
        shutil.rmtree(ckpt)
    ckpt.mkdir(parents=True, exist_ok=True)
    stamp.write_text(config_digest)
    if run_id:
        (ckpt / "run_id").write_text(run_id)
    last = ckpt / "last.ckpt"
    if not last.is_file():
        return None
    log.info("resuming from %s", last)
    return str(last)


def interrupted_run(out_dir: Path, config_digest: str) -> str | None:
    """The MLflow run of an interrupted attempt of this stage that left a checkpoint of the same
    config (so training will resume from it), else None."""
    ckpt = Path(out_dir) / "ckpt"
    stamp, run_id = ckpt / "config_digest", ckpt / "run_id"
    if (ckpt / "last.ckpt").is_file() and stamp.is_file() and stamp.read_text() == config_digest \
            and run_id.is_file():
        return run_id.read_text().strip()
    return None
