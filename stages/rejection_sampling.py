"""Stage 3a of R1 (§2.3.3): rejection sampling from the reasoning-RL checkpoint. Several samples
per training prompt; the correct ones (the same verifier as RL and evaluation) that read well
(no mixed languages, long paragraphs or code blocks) are kept for general SFT.

    python -m stages.rejection_sampling [rejection_sampling.n=8] [rejection_sampling.max_per_prompt=4]

Sharded under Snakemake (``io.part``, r1flow/runners/curation.py). Output: ``reasoning_sft.jsonl``,
``report.json`` (kept and dropped per filter and family) and ``lengths.png``.
"""

from __future__ import annotations

from r1flow.harness.entry import StageContext, stage_main
from r1flow.runners.curation import run_curation


@stage_main("rejection_sampling")
def main(ctx: StageContext) -> dict:
    return run_curation(ctx)


if __name__ == "__main__":
    main()
