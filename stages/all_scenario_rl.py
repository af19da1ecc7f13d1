"""Stage 4 of R1: all-scenario RL (GRPO) from the general-SFT checkpoint.

    python -m stages.all_scenario_rl [all_scenario_rl.general_last_steps=100]

Reasoning prompts are scored by the rule rewards; in the last ``general_last_steps`` steps a share
``general_prompt_frac`` of the prompts are general ones (non-reasoning tasks and requests for a
secret) scored by the reward models — helpfulness on the summary, harmlessness on the whole
response — plus format and language consistency. Temperature 0.7 (R1).

Input: ``io.init_model`` (default: the general_sft stage's export), ``<data_dir>/train.jsonl``,
``general_train.jsonl``, ``safety_train.jsonl`` and the reward models of ``reward_models``.
Output: ``<out_dir>/model`` (the final R1 model) and ``curves.png``.
"""

from __future__ import annotations

from r1flow.grpo_stage import run_grpo
from r1flow.stage import StageContext, stage_main


@stage_main("all_scenario_rl", upstream=("data", "general_sft", "helpfulness_rm", "harmlessness_rm"))
def main(ctx: StageContext) -> dict:
    init = ctx.cfg.io.init_model or f"{ctx.cfg.results_dir}/general_sft/model"
    return run_grpo(ctx, "all_scenario_rl", init)


if __name__ == "__main__":
    main()
