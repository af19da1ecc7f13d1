"""Stage 2 of R1 (§2.3.2): reasoning-oriented RL (GRPO) from the cold-start checkpoint; the reward
is accuracy + format + language consistency.

    python -m stages.reasoning_rl [experiment=smoke] [reasoning_rl.beta=0.04]
    python -m stages.reasoning_rl -m reasoning_rl.beta=0,0.001,0.04     # a sweep against the DAG's checkpoint

Output: ``model/``, ``curves.png`` (reward, held-out pass@1, response length) and ``history.json``.
"""

from __future__ import annotations

from r1flow.harness.entry import StageContext, stage_main
from r1flow.runners.grpo import run_grpo


@stage_main("reasoning_rl")
def main(ctx: StageContext) -> dict:
    return run_grpo(ctx)


if __name__ == "__main__":
    main()
