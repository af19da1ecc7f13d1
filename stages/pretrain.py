"""Pretrain the embedded world's base model from scratch on the procedurally generated corpus.

    python -m stages.pretrain [experiment=smoke] [pretrain.max_steps=3000] [model.hidden_size=192]

Real experiments skip this stage: their base model is ``model.name_or_path``.
Tokens the corpus never holds (the chat template's markers, words only the task prompts use) leave
pretraining with the mean embedding of the others, so that the SFT which introduces them starts
from an average token rather than from one the training pushed down (Hewitt, 2021; transformers'
``resize_token_embeddings`` initialises new rows from the old ones' mean the same way).
Students are pretrained the same way (``student=<name>``: the teacher's model section with the
student's overrides). Output: ``model/`` (HF checkpoint: safetensors, tokenizer, chat template).
"""

from __future__ import annotations

import random

from r1flow.dag import TOKENIZER_FILES
from r1flow.harness.entry import StageContext, stage_main
from r1flow.harness.files import file_digest, read_jsonl
from r1flow.harness.models import build_model, load_tokenizer, mean_init_rows
from r1flow.runners.sft import fit_and_export
from r1flow.train.sft import PackedBlocks, pack_documents


@stage_main("pretrain")
def main(ctx: StageContext) -> dict:
    cfg, pcfg = ctx.cfg, ctx.cfg.pretrain
    tok = load_tokenizer(str(ctx.data_file(TOKENIZER_FILES[0]).parent))
    corpus_path = ctx.data_file("pretrain_corpus")
    docs = [r["text"] for r in read_jsonl(corpus_path, required=["text"])]
    ctx.run.log_dataset(str(corpus_path), name=f"{cfg.name}/pretrain_corpus", digest=file_digest(corpus_path),
                        context="train", num_rows=len(docs))
    random.Random(cfg.seed).shuffle(docs)
    n_val = max(pcfg.batch_size * pcfg.val_batches, len(docs) // 100)
    stream, val_stream = pack_documents(tok, docs[n_val:]), pack_documents(tok, docs[:n_val])
    train, val = PackedBlocks(stream, pcfg.seq_len), PackedBlocks(val_stream, pcfg.seq_len)
    model = build_model(cfg.model, tok)
    unseen = sorted(set(range(len(tok))) - set(stream))  # never trained on (validation documents are not)
    ctx.run.log_params({"pretrain/unseen_tokens": len(unseen)})
    out = fit_and_export(ctx, model, tok, pcfg, train, val, max_steps=pcfg.max_steps,
                         finalize=lambda weights: mean_init_rows(weights, unseen))
    return {**out, "unseen_tokens": tok.convert_ids_to_tokens(unseen)}


if __name__ == "__main__":
    main()
