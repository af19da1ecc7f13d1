"""The R1-Zero branch: GRPO straight from the base model, R1-Zero template, accuracy + format.

    python -m stages.r1_zero [experiment=smoke]

Input: ``io.init_model`` (default: the base model — the pretrain stage's export or
``model.name_or_path``). Output: ``<out_dir>/model`` and ``curves.png``.
"""

from __future__ import annotations

from r1flow.grpo_stage import run_grpo
from r1flow.stage import StageContext, stage_main


@stage_main("r1_zero", upstream=("data", "pretrain"))
def main(ctx: StageContext) -> dict:
    cfg = ctx.cfg
    base = cfg.model.name_or_path if cfg.model.init == "pretrained" else f"{cfg.results_dir}/pretrain/model"
    init = cfg.io.init_model or base
    if cfg.model.init == "pretrained" and init == cfg.model.name_or_path:  # lineage of an external base
        ctx.run.log_input_model(ctx.run.register_external_base(init))
    return run_grpo(ctx, "r1_zero", init)


if __name__ == "__main__":
    main()
