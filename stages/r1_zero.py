"""The R1-Zero branch (§2.2): GRPO straight from the base model, on the R1-Zero template
(Table 1), with rule rewards only: accuracy and format, equal weight.

    python -m stages.r1_zero [experiment=smoke] [r1_zero.max_steps=100]

Output: ``model/``, ``curves.png`` (reward, held-out pass@1 on its own template, length) and
``history.json``.
"""

from __future__ import annotations

from r1flow.harness.entry import StageContext, stage_main
from r1flow.runners.grpo import run_grpo


@stage_main("r1_zero")
def main(ctx: StageContext) -> dict:
    return run_grpo(ctx)


if __name__ == "__main__":
    main()
