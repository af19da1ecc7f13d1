"""Stage 2 of R1: reasoning-oriented RL (GRPO, rule rewards) from the cold-start checkpoint.

    python -m stages.reasoning_rl [experiment=smoke] [reasoning_rl.beta=0.04]
    python -m stages.reasoning_rl -m reasoning_rl.beta=0,0.001,0.04     # a sweep against the DAG's checkpoint

Input: ``io.init_model`` (default: the cold_start_sft stage's export) and ``<data_dir>/train.jsonl``.
Output: ``<out_dir>/model`` (HF checkpoint) and ``curves.png`` (reward, held-out pass@1, length).
"""

from __future__ import annotations

from r1flow.grpo_stage import run_grpo
from r1flow.stage import StageContext, stage_main, stage_output


@stage_main("reasoning_rl", upstream=("data", "cold_start_sft"))
def main(ctx: StageContext) -> dict:
    init = ctx.cfg.io.init_model or f"{stage_output(ctx.cfg, 'cold_start_sft')}/model"
    return run_grpo(ctx, "reasoning_rl", init)


if __name__ == "__main__":
    main()
