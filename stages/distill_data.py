"""Distillation data (§2.4): the curation of rejection sampling run on the final model, the tiny
world's version of the paper's 800k samples that the students learn from.

    python -m stages.distill_data [distill_data.n=8]

Output: ``reasoning_sft.jsonl``, ``report.json`` and ``lengths.png``.
"""

from __future__ import annotations

from r1flow.harness.entry import StageContext, stage_main
from r1flow.runners.curation import run_curation


@stage_main("distill_data")
def main(ctx: StageContext) -> dict:
    return run_curation(ctx)


if __name__ == "__main__":
    main()
