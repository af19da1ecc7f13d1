"""Distillation (§2.4): a smaller student trained by SFT alone, no RL, on the final model's curated
samples mixed with the non-reasoning rows (the paper's 800k: ~600k reasoning + ~200k non-reasoning).

    python -m stages.distill student=small [distill.optim.lr=1e-4]

``student`` names an entry of ``students``; its base is that student's pretrained model.
Output: ``students/<student>/distill/model/``.
"""

from __future__ import annotations

from r1flow.harness.entry import StageContext, stage_main
from r1flow.runners.sft import run_mixed_sft


@stage_main("distill")
def main(ctx: StageContext) -> dict:
    return run_mixed_sft(ctx)


if __name__ == "__main__":
    main()
