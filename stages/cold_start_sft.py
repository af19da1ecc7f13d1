"""Stage 1 of R1: cold-start SFT of the base model on readable long-CoT examples.

    python -m stages.cold_start_sft [experiment=smoke] [cold_start_sft.optim.lr=1e-4]

Input: the base model (``io.init_model``; default: the pretrain stage's export, or
``model.name_or_path`` for real models) and ``<data_dir>/cold_start.jsonl``.
Output: ``<out_dir>/model`` (HF checkpoint).
"""

from __future__ import annotations

import math
from pathlib import Path

from r1flow.datafiles import file_digest, read_jsonl
from r1flow.fit import fit_and_export, render_sft_rows, sft_datasets
from r1flow.models import load_model, load_tokenizer
from r1flow.stage import StageContext, base_model, stage_main


@stage_main("cold_start_sft", upstream=("data", "pretrain"))
def main(ctx: StageContext) -> dict:
    cfg, scfg = ctx.cfg, ctx.cfg.cold_start_sft
    init = base_model(ctx)
    tok = load_tokenizer(init, cfg.model.trust_remote_code)
    data_path = Path(cfg.io.data_dir) / "cold_start.jsonl"
    rows = render_sft_rows(tok, read_jsonl(data_path, required=["messages"]), str(data_path))
    ctx.run.log_dataset(str(data_path), name=f"{cfg.name}/cold_start", digest=file_digest(data_path),
                        context="train", num_rows=len(rows))
    train, val, sampler, collate = sft_datasets(tok, rows, scfg, cfg.seed)
    model = load_model(init, cfg.model, cfg.trainer.accelerator)
    steps = scfg.max_steps if scfg.max_steps > 0 else scfg.epochs * math.ceil(len(train) / scfg.batch_size)
    return fit_and_export(ctx, model, tok, scfg, train, val, max_steps=steps, sampler=sampler, collate=collate)


if __name__ == "__main__":
    main()
