"""Stage 3a of R1: rejection sampling from the reasoning-RL checkpoint.

    python -m stages.rejection_sampling [rejection_sampling.n=8] [rejection_sampling.max_per_prompt=4]

Samples ``n`` completions per training prompt, keeps the verified, readable ones (at most
``max_per_prompt`` per prompt) for general SFT. Sharded under Snakemake (``io.part``); the
machinery, shared with ``stages.distill_data``, is r1flow/curation_stage.py.

Output: ``<out_dir>/reasoning_sft.jsonl``, ``report.json``, ``lengths.png``.
"""

from __future__ import annotations

from r1flow.curation_stage import run_curation
from r1flow.stage import StageContext, stage_main


@stage_main("rejection_sampling", upstream=("data", "reasoning_rl"))
def main(ctx: StageContext) -> dict:
    return run_curation(ctx, "rejection_sampling")


if __name__ == "__main__":
    main()
