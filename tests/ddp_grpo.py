"""Run a few GRPO steps under Lightning DDP on CPU (2 processes, gloo); each rank saves its weights.

    python tests/ddp_grpo.py OUT_DIR        (Lightning re-launches this script for rank 1)
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from r1flow.config import compose
from r1flow.harness.models import build_model
from r1flow.sampling.prompts import render_prompt
from r1flow.sampling.rollout import HFGenerator
from r1flow.train.grpo import GRPOModule
from r1flow.world.corpus import make_split
from r1flow.world.tokenizer import build_tokenizer


def main(out: Path) -> None:
    L.seed_everything(0, verbose=False)
    cfg = compose(["experiment=smoke", "reasoning_rl.generation_batch_size=16", "reasoning_rl.group_size=4",
                   "reasoning_rl.mini_batch_size=8", "reasoning_rl.loss_type=dapo"])
    items = make_split(cfg.data, "train", 16, 1)
    tok = build_tokenizer([it["question"] for it in items])
    model = build_model(cfg.model, tok)
    prompts = [render_prompt(tok, it["question"]) for it in items]
    module = GRPOModule(model, tok, cfg.reasoning_rl, items, prompts, HFGenerator(model, tok, progress=False))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=4, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(range(4), batch_size=1))
    torch.save({k: v.detach().clone() for k, v in module.model.state_dict().items()},
               out / f"rank{trainer.global_rank}.pt")
    torch.save(module.last_samples, out / f"samples{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
