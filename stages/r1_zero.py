"""The R1-Zero branch: GRPO straight from the base model, R1-Zero template, accuracy + format.

    python -m stages.r1_zero [experiment=smoke]

Input: ``io.init_model`` (default: the base model — the pretrain stage's export or
``model.name_or_path``). Output: ``<out_dir>/model`` and ``curves.png``.
"""

from __future__ import annotations

from r1flow.grpo_stage import run_grpo
from r1flow.stage import StageContext, base_model, stage_main


@stage_main("r1_zero", upstream=("data", "pretrain"))
def main(ctx: StageContext) -> dict:
    return run_grpo(ctx, "r1_zero", base_model(ctx))


if __name__ == "__main__":
    main()
