"""Stage 4 of R1: the helpfulness reward model (r1flow/reward_model.py).

    python -m stages.helpfulness_rm [helpfulness_rm.optim.lr=1e-4] [helpfulness_rm.train_data=/data/prefs.jsonl]

Input: the ``helpfulness_rm.start_from`` stage's model (default: general_sft) and the
``prompt, chosen, rejected`` files ``helpfulness_rm.train_data`` / ``heldout_data``.
Output: ``<out_dir>/model`` (an HF sequence-classification checkpoint with one label) and the
held-out accuracy (in done.json and the MLflow run).
"""

from __future__ import annotations

from r1flow.reward_model import run_reward_model
from r1flow.stage import StageContext, stage_main


@stage_main("helpfulness_rm", upstream=("data", "general_sft"))
def main(ctx: StageContext) -> dict:
    return run_reward_model(ctx, "helpfulness_rm")


if __name__ == "__main__":
    main()
