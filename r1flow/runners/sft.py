"""The runner of the supervised stages: fit the causal-LM module (r1flow/train/sft.py) under
Lightning and export a Hugging Face checkpoint. Pretraining, cold-start SFT, general SFT and
distillation differ only in their data and config section."""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

from torch.utils.data import Dataset

from r1flow.dag import BY_NAME, Kind
from r1flow.harness.checkpoints import last_checkpoint
from r1flow.harness.entry import StageContext
from r1flow.harness.files import DataError, file_digest, read_jsonl
from r1flow.harness.models import count_parameters, export_hf, full_state_dict, load_model, load_tokenizer
from r1flow.sampling.prompts import think_prefill
from r1flow.train.sft import (
    BucketBatchSampler,
    CausalLMModule,
    PromptResponseDataset,
    ResumableLoader,
    ShuffledBatchSampler,
    eval_loader,
    pad_collate,
)
from r1flow.train.trainer import build_trainer, final_metrics

log = logging.getLogger("r1flow.runners.sft")


def render_sft_rows(tokenizer, rows: list[dict], path: str = "<rows>") -> list[dict]:
    """Chat-message rows -> (prompt, response) text: the prompt is the chat template up to the
    assistant's generation prompt (which may pre-fill ``<think>``), the response is the rest."""
    out = []
    for i, row in enumerate(rows, 1):
        msgs = row["messages"]
        if not msgs or msgs[-1].get("role") != "assistant":
            raise ValueError(f"config error: {path}:{i}: the last message must be the assistant's")
        prompt = tokenizer.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(msgs, tokenize=False)
        if not full.startswith(prompt) or msgs[-1]["content"].split("</think>")[-1] not in full:
            # templates that rewrite the assistant turn (e.g. drop the reasoning of past turns)
            full = prompt + msgs[-1]["content"] + (tokenizer.eos_token or "")
        out.append({"prompt": prompt, "response": full[len(prompt):].rstrip("\n")})
    return out


def fit_and_export(ctx: StageContext, model, tokenizer, section, train_ds: Dataset, val_ds: Dataset,
                   max_steps: int, sampler=None, collate=None, finalize=None) -> dict:
    """Train ``model`` under Lightning (resuming from ``ckpt/last.ckpt`` if an earlier run of this
    stage was interrupted), then save a plain HF directory in ``<out_dir>/model``; ``finalize``
    (if given) edits the gathered weights (a state dict) before they are saved."""
    module = CausalLMModule(model, section.optim, total_steps=max_steps)
    sampler = sampler or ShuffledBatchSampler(len(train_ds), section.batch_size, ctx.cfg.seed)
    train_loader = ResumableLoader(train_ds, sampler, collate)
    val_loader = eval_loader(val_ds, section.batch_size, collate)
    val_every = min(section.val_every, len(train_loader)) if section.val_every else None
    trainer = build_trainer(
        ctx.cfg.trainer, ctx.out_dir, ctx.run.lightning_logger(), max_steps=max_steps,
        grad_clip=section.optim.grad_clip, val_every=val_every, ckpt_every=section.ckpt_every,
        limit_val_batches=getattr(section, "val_batches", None),
    )
    resume = last_checkpoint(ctx.out_dir, ctx.config_digest, ctx.run.run_id)
    ctx.run.log_params({"model/parameters": count_parameters(model), "train/max_steps": max_steps})
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    final = final_metrics(trainer)
    weights = full_state_dict(module.model)  # on every rank: gathers the shards of a sharded model
    if finalize is not None:
        finalize(weights)
    if trainer.global_rank == 0:
        model_dir = export_hf(module.model, tokenizer, Path(ctx.out_dir) / "model", weights)
        ctx.run.log_hf_model(str(model_dir), name=ctx.model_name,
                             params={"parameters": str(count_parameters(model)), "steps": str(trainer.global_step)})
    return {"steps": trainer.global_step, "final_metrics": final}


def sft_datasets(tokenizer, rows: list[dict], section, seed: int):
    """Split rendered rows into train/validation datasets and a length-bucketed batch sampler."""
    n_val = max(1, int(len(rows) * section.val_fraction))
    train = PromptResponseDataset(tokenizer, rows[n_val:], section.max_length)
    val = PromptResponseDataset(tokenizer, rows[:n_val], section.max_length)
    sampler = BucketBatchSampler(train.lengths(), section.batch_size, section.bucket_factor, seed)
    return train, val, sampler, pad_collate(tokenizer.pad_token_id)


def run_sft(ctx: StageContext, section, sources: dict[str, tuple[Path, list[dict]]]) -> dict:
    """An SFT stage: log each source dataset (name -> (file, chat rows)) with its digest, train the
    starting model on the union of their rows and export it. Cold-start SFT, general SFT and
    distillation differ only in their sources and ``section``."""
    init = ctx.init
    tok = load_tokenizer(init, ctx.cfg.model.trust_remote_code)
    think_prefill(tok)  # a template without a generation prompt fails here, before any compute
    rows = []
    for name, (path, src_rows) in sources.items():
        ctx.run.log_dataset(str(path), name=f"{ctx.cfg.name}/{name}", digest=file_digest(path), context="train",
                            num_rows=len(src_rows))
        rows += render_sft_rows(tok, src_rows, str(path))
    train, val, sampler, collate = sft_datasets(tok, rows, section, ctx.cfg.seed)
    model = load_model(init, ctx.cfg.model, ctx.cfg.trainer.accelerator)
    steps = section.max_steps if section.max_steps > 0 else section.epochs * math.ceil(len(train) / section.batch_size)
    return fit_and_export(ctx, model, tok, section, train, val, max_steps=steps, sampler=sampler, collate=collate)


def mix(reasoning: list[dict], general: list[dict], general_frac: float, seed: int) -> list[dict]:
    """All reasoning rows plus non-reasoning rows making up ``general_frac`` of the mix (as many as
    exist when there are too few; all of them when the curation kept nothing)."""
    want = round(len(reasoning) * general_frac / (1 - general_frac)) if reasoning else len(general)
    return reasoning + random.Random(seed).sample(general, min(want, len(general)))


def run_mixed_sft(ctx: StageContext) -> dict:
    """General SFT and distillation: SFT of the starting model on the curated reasoning samples of
    the upstream curation stage (its ``reasoning_sft.jsonl``) mixed with ``<data_dir>/general_sft.jsonl``
    (non-reasoning tasks answered directly) so that these make up ``general_frac`` of the rows."""
    cfg, scfg = ctx.cfg, ctx.cfg[ctx.stage]
    curation = next((name for name in ctx.upstream if BY_NAME[name].kind is Kind.curation), None)
    if curation is None:
        raise ValueError(f"config error: io.upstream: {ctx.stage} reads a curated dataset (a curation stage's "
                         f"output); io.upstream has {', '.join(ctx.upstream) or 'nothing'}")
    reasoning_path = ctx.reads(curation) / "reasoning_sft.jsonl"
    reasoning = read_jsonl(reasoning_path, required=["messages"], allow_empty=True)
    general_path = ctx.data_file("general_sft") if scfg.general_frac > 0 else None
    general = read_jsonl(general_path, required=["messages"]) if general_path else []
    if not reasoning:
        log.warning("%s holds no samples (the curation kept none): training on non-reasoning rows only",
                    reasoning_path)
    chosen = mix(reasoning, general, scfg.general_frac, cfg.seed)[len(reasoning):]
    if not reasoning and not chosen:
        raise DataError(f"{reasoning_path}: no rows, and general_frac=0 leaves nothing to train on")
    sources = {cfg[curation].dataset: (reasoning_path, reasoning)}
    if chosen:
        sources["general_sft"] = (general_path, chosen)
    summary = run_sft(ctx, scfg, sources)
    return {**summary, "rows": {"reasoning": len(reasoning), "general": len(chosen)}}
