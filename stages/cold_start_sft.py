"""Stage 1 of R1 (§2.3.1): cold-start SFT of the base model on a few thousand readable long-CoT
examples, so that reasoning RL starts from a model that writes R1's format.

    python -m stages.cold_start_sft [experiment=smoke] [cold_start_sft.optim.lr=1e-4]

Input: the base model and ``<data_dir>/cold_start.jsonl`` (chat rows). Output: ``model/``.
"""

from __future__ import annotations

from r1flow.harness.entry import StageContext, stage_main
from r1flow.harness.files import read_jsonl
from r1flow.runners.sft import run_sft


@stage_main("cold_start_sft")
def main(ctx: StageContext) -> dict:
    path = ctx.data_file("cold_start")
    return run_sft(ctx, ctx.cfg.cold_start_sft, {"cold_start": (path, read_jsonl(path, required=["messages"]))})


if __name__ == "__main__":
    main()
