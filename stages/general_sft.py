"""Stage 3b of R1: general SFT on rejection-sampled reasoning data mixed with non-reasoning data.

    python -m stages.general_sft [general_sft.general_frac=0.4] [general_sft.start_from=reasoning_rl]

R1 restarts this SFT from the base model, not from the reasoning-RL checkpoint; ``start_from``
picks another stage's export instead (``io.init_model`` overrides both).

Input: ``general_sft.reasoning_data`` (the rejection-sampling stage's ``reasoning_sft.jsonl``) and
``<data_dir>/general_sft.jsonl`` (non-reasoning tasks answered directly), mixed so that non-reasoning
rows are a share ``general_frac`` of the whole.
Output: ``<out_dir>/model`` (HF checkpoint).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from r1flow.datafiles import DataError, read_jsonl
from r1flow.fit import run_sft
from r1flow.stage import StageContext, base_model, stage_main

log = logging.getLogger("r1flow.general_sft")


def mix(reasoning: list[dict], general: list[dict], general_frac: float, seed: int) -> list[dict]:
    """All reasoning rows plus non-reasoning rows making up ``general_frac`` of the mix (as many as
    exist when there are too few; all of them when rejection sampling kept nothing)."""
    want = round(len(reasoning) * general_frac / (1 - general_frac)) if reasoning else len(general)
    return reasoning + random.Random(seed).sample(general, min(want, len(general)))


@stage_main("general_sft", upstream=("data", "pretrain", "rejection_sampling"))
def main(ctx: StageContext) -> dict:
    cfg, scfg = ctx.cfg, ctx.cfg.general_sft
    if cfg.io.init_model or scfg.start_from == "base":
        init = base_model(ctx)
    else:
        init = f"{cfg.results_dir}/{scfg.start_from}/model"
    reasoning_path = Path(scfg.reasoning_data)
    general_path = Path(cfg.io.data_dir) / "general_sft.jsonl"
    reasoning = read_jsonl(reasoning_path, required=["messages"], allow_empty=True)
    general = read_jsonl(general_path, required=["messages"]) if scfg.general_frac > 0 else []
    if not reasoning:
        log.warning("%s holds no samples (rejection sampling kept none): training on non-reasoning rows only",
                    reasoning_path)
    chosen = mix(reasoning, general, scfg.general_frac, cfg.seed)[len(reasoning):]
    if not reasoning and not chosen:
        raise DataError(f"{reasoning_path}: no rows, and general_frac=0 leaves nothing to train on")
    sources = {"rejection_sampled": (reasoning_path, reasoning)}
    if chosen:
        sources["general_sft"] = (general_path, chosen)
    summary = run_sft(ctx, scfg, init, sources)
    return {**summary, "rows": {"reasoning": len(reasoning), "general": len(chosen)}}


if __name__ == "__main__":
    main()
