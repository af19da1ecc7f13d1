"""Distillation (R1_RECIPE.md §4): a smaller student trained by SFT only on the final model's samples.

    python -m stages.distill student=small [distill.optim.lr=1e-4]

``student`` names an entry of ``students`` (model overrides of a smaller model of the same family);
its base is that student's pretrain export (``results/<name>/students/<student>/pretrain/model``,
or ``io.init_model``). The data are the distill_data stage's ``reasoning_sft.jsonl`` mixed with the
non-reasoning rows, as in general SFT (the paper's 800k: ~600k reasoning + ~200k non-reasoning).
Output: ``<out_dir>/model`` (HF checkpoint).
"""

from __future__ import annotations

from r1flow.fit import run_mixed_sft
from r1flow.stage import StageContext, base_model, stage_main


@stage_main("distill", upstream=("data", "pretrain", "distill_data"))
def main(ctx: StageContext) -> dict:
    if not ctx.cfg.student:
        raise ValueError("config error: student: distillation trains a student; name one of students "
                         f"({', '.join(ctx.cfg.students) or 'none configured'}), e.g. student=small")
    return run_mixed_sft(ctx, "distill", base_model(ctx), ctx.cfg.distill_data.dataset)


if __name__ == "__main__":
    main()
