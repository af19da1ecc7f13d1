"""Stage 4 of R1 (§2.3.4): the helpfulness reward model, pairwise (Bradley-Terry) on the final
summary only, so that reasoning is not judged.

    python -m stages.helpfulness_rm [helpfulness_rm.train_data=/data/prefs.jsonl helpfulness_rm.heldout_data=...]

Output: ``model/`` (a sequence-classification checkpoint, one score) and the held-out accuracy.
"""

from __future__ import annotations

from r1flow.harness.entry import StageContext, stage_main
from r1flow.runners.reward_model import run_reward_model


@stage_main("helpfulness_rm")
def main(ctx: StageContext) -> dict:
    return run_reward_model(ctx)


if __name__ == "__main__":
    main()
