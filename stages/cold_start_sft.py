"""Stage 1 of R1: cold-start SFT of the base model on readable long-CoT examples.

    python -m stages.cold_start_sft [experiment=smoke] [cold_start_sft.optim.lr=1e-4]

Input: the base model (``io.init_model``; default: the pretrain stage's export, or
``model.name_or_path`` for real models) and ``<data_dir>/cold_start.jsonl``.
Output: ``<out_dir>/model`` (HF checkpoint).
"""

from __future__ import annotations

from pathlib import Path

from r1flow.datafiles import read_jsonl
from r1flow.fit import run_sft
from r1flow.stage import StageContext, base_model, stage_main


@stage_main("cold_start_sft", upstream=("data", "pretrain"))
def main(ctx: StageContext) -> dict:
    path = Path(ctx.cfg.io.data_dir) / "cold_start.jsonl"
    return run_sft(ctx, ctx.cfg.cold_start_sft, base_model(ctx), {"cold_start": (path, read_jsonl(path, required=["messages"]))})


if __name__ == "__main__":
    main()
