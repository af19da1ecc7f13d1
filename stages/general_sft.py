"""Stage 3b of R1: general SFT on rejection-sampled reasoning data mixed with non-reasoning data.

    python -m stages.general_sft [general_sft.general_frac=0.4] [general_sft.start_from=reasoning_rl]

R1 restarts this SFT from the base model, not from the reasoning-RL checkpoint; ``start_from``
picks another stage's export instead (``io.init_model`` overrides both).

Input: ``general_sft.reasoning_data`` (the rejection-sampling stage's ``reasoning_sft.jsonl``) and
``<data_dir>/general_sft.jsonl`` (non-reasoning tasks answered directly), mixed so that non-reasoning
rows are a share ``general_frac`` of the whole (r1flow/fit.py, shared with distillation).
Output: ``<out_dir>/model`` (HF checkpoint).
"""

from __future__ import annotations

from r1flow.fit import run_mixed_sft
from r1flow.stage import StageContext, base_model, stage_main


@stage_main("general_sft", upstream=("data", "pretrain", "rejection_sampling"))
def main(ctx: StageContext) -> dict:
    cfg = ctx.cfg
    start = cfg.general_sft.start_from
    init = base_model(ctx) if cfg.io.init_model or start == "base" else f"{cfg.results_dir}/{start}/model"
    return run_mixed_sft(ctx, "general_sft", init, cfg.rejection_sampling.dataset)


if __name__ == "__main__":
    main()
