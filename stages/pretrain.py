"""Pretrain the embedded world's base model from scratch on the procedurally generated corpus.

    python -m stages.pretrain [experiment=smoke] [pretrain.max_steps=3000] [model.hidden_size=192]

Real experiments skip this stage: their base model is ``model.name_or_path``.
Output: ``<out_dir>/model`` (HF checkpoint: safetensors + tokenizer + chat template).
"""

from __future__ import annotations

import random
from pathlib import Path

from r1flow.datafiles import file_digest, read_jsonl
from r1flow.fit import fit_and_export
from r1flow.models import build_model, load_tokenizer
from r1flow.sft import PackedBlocks, pack_documents
from r1flow.stage import StageContext, stage_main


@stage_main("pretrain", upstream=("data",))
def main(ctx: StageContext) -> dict:
    cfg, pcfg = ctx.cfg, ctx.cfg.pretrain
    if cfg.model.init != "scratch":
        raise ValueError("config error: model.init: pretraining builds a model from scratch; "
                         f"with init={cfg.model.init!r} the base model is model.name_or_path")
    data_dir = Path(cfg.io.data_dir)
    tok = load_tokenizer(str(data_dir / "tokenizer"))
    corpus_path = data_dir / "pretrain_corpus.jsonl"
    docs = [r["text"] for r in read_jsonl(corpus_path, required=["text"])]
    ctx.run.log_dataset(str(corpus_path), name=f"{cfg.name}/pretrain_corpus", digest=file_digest(corpus_path),
                        context="train", num_rows=len(docs))
    random.Random(cfg.seed).shuffle(docs)
    n_val = max(pcfg.batch_size * pcfg.val_batches, len(docs) // 100)
    train = PackedBlocks(pack_documents(tok, docs[n_val:]), pcfg.seq_len)
    val = PackedBlocks(pack_documents(tok, docs[:n_val]), pcfg.seq_len)
    model = build_model(cfg.model, tok)
    return fit_and_export(ctx, model, tok, pcfg, train, val, max_steps=pcfg.max_steps)


if __name__ == "__main__":
    main()
