"""Distillation data (R1_RECIPE.md §1, §4): the final model's verified, readable samples.

    python -m stages.distill_data [distill_data.n=8] [io.init_model=results/tiny/all_scenario_rl/model]

The rejection-sampling machinery (r1flow/curation_stage.py, the same verifier and filters) run on
the all-scenario-RL model over the training prompts: the tiny world's version of the paper's 800k
samples that the students are trained on (``stages.distill``).

Output: ``<out_dir>/reasoning_sft.jsonl``, ``report.json``, ``lengths.png``.
"""

from __future__ import annotations

from r1flow.curation_stage import run_curation
from r1flow.stage import StageContext, stage_main


@stage_main("distill_data", upstream=("data", "all_scenario_rl"))
def main(ctx: StageContext) -> dict:
    return run_curation(ctx, "distill_data")


if __name__ == "__main__":
    main()
