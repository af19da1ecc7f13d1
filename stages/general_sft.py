"""Stage 3b of R1 (§2.3.3): SFT on the rejection-sampled reasoning data mixed with non-reasoning
data (tasks answered directly, without a CoT; requests for a secret refused).

    python -m stages.general_sft [general_sft.general_frac=0.4] [general_sft.start_from=reasoning_rl]

R1 restarts this SFT from the base model, not from the reasoning-RL checkpoint;
``general_sft.start_from`` names another stage instead, and the DAG and the lineage follow.
Output: ``model/``.
"""

from __future__ import annotations

from r1flow.harness.entry import StageContext, stage_main
from r1flow.runners.sft import run_mixed_sft


@stage_main("general_sft")
def main(ctx: StageContext) -> dict:
    return run_mixed_sft(ctx)


if __name__ == "__main__":
    main()
