"""Stage 4 of R1 (§2.3.4): all-scenario RL from the general-SFT checkpoint, temperature 0.7.

    python -m stages.all_scenario_rl [all_scenario_rl.general_last_steps=100]

Reasoning prompts keep the rule rewards. In the last ``general_last_steps`` a share
``general_prompt_frac`` of the prompts are general ones (non-reasoning tasks, requests for a
secret), scored by ``general_rewards``: the reward models (helpfulness on the summary,
harmlessness on the whole response) plus format and language consistency.
Output: ``model/`` (the final R1 model), ``curves.png`` and ``history.json``.
"""

from __future__ import annotations

from r1flow.harness.entry import StageContext, stage_main
from r1flow.runners.grpo import run_grpo


@stage_main("all_scenario_rl")
def main(ctx: StageContext) -> dict:
    return run_grpo(ctx)


if __name__ == "__main__":
    main()
