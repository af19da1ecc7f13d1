"""Stage 4 of R1 (§2.3.4): the harmlessness reward model, pointwise (safe / unsafe) on the whole
response, reasoning included, so that harm in the reasoning is caught too.

    python -m stages.harmlessness_rm [harmlessness_rm.optim.lr=1e-4]

It writes ``model/``, a sequence-classification checkpoint with one score, and reports how often
the score tells the safe answer of a held-out pair from the unsafe one.
"""

from __future__ import annotations

from r1flow.harness.entry import StageContext, stage_main
from r1flow.runners.reward_model import run_reward_model


@stage_main("harmlessness_rm")
def main(ctx: StageContext) -> dict:
    return run_reward_model(ctx)


if __name__ == "__main__":
    main()
