"""The runner of the reward-model stages: train the scalar-head model (r1flow/train/reward_model.py)
on ``prompt, chosen, rejected`` pairs, report its held-out accuracy, export it."""

from __future__ import annotations

import math
from pathlib import Path

from r1flow.harness.checkpoints import last_checkpoint
from r1flow.harness.entry import StageContext
from r1flow.harness.files import file_digest, read_jsonl
from r1flow.harness.models import count_parameters, export_hf, full_state_dict, load_model, load_tokenizer
from r1flow.train.reward_model import (
    PreferenceDataset,
    RewardModule,
    RewardScorer,
    heldout_accuracy,
    preference_collate,
)
from r1flow.train.sft import ResumableLoader, ShuffledBatchSampler, eval_loader
from r1flow.train.sharding import unsharded
from r1flow.train.trainer import build_trainer, final_metrics

PAIR_KEYS = ["prompt", "chosen", "rejected"]


def read_pairs(ctx: StageContext, rm) -> tuple[list[dict], list[dict]]:
    """The training and held-out pairs, logged as the run's datasets."""
    rows = {}
    for name, path, context in (("train", rm.train_data, "train"), ("heldout", rm.heldout_data, "eval")):
        rows[name] = read_jsonl(path, required=PAIR_KEYS)
        ctx.run.log_dataset(path, name=f"{ctx.cfg.name}/{ctx.stage}_{name}", digest=file_digest(path),
                            context=context, num_rows=len(rows[name]))
    return rows["train"], rows["heldout"]


def run_reward_model(ctx: StageContext) -> dict:
    cfg, rm = ctx.cfg, ctx.cfg[ctx.stage]
    tok = load_tokenizer(ctx.init, cfg.model.trust_remote_code)
    train_rows, held_rows = read_pairs(ctx, rm)
    train = PreferenceDataset(tok, train_rows, rm.mode, rm.target, rm.max_length)
    held = PreferenceDataset(tok, held_rows, rm.mode, rm.target, rm.max_length)
    collate = preference_collate(tok.pad_token_id, rm.mode)
    batch = min(rm.batch_size, len(train))
    train_loader = ResumableLoader(train, ShuffledBatchSampler(len(train), batch, cfg.seed), collate)
    val_loader = eval_loader(held, batch, collate)
    steps = rm.max_steps if rm.max_steps > 0 else rm.epochs * math.ceil(len(train) / batch)
    model = load_model(ctx.init, cfg.model, cfg.trainer.accelerator, scalar_head=True, pad_token_id=tok.pad_token_id)
    module = RewardModule(model, rm.mode, rm.optim, steps)
    trainer = build_trainer(cfg.trainer, ctx.out_dir, ctx.run.lightning_logger(), max_steps=steps,
                            grad_clip=rm.optim.grad_clip, val_every=min(rm.val_every, len(train_loader)),
                            ckpt_every=rm.ckpt_every)
    trainer.fit(module, train_loader, val_loader, ckpt_path=last_checkpoint(ctx.out_dir, ctx.config_digest, ctx.run.run_id))
    final = final_metrics(trainer)
    weights = full_state_dict(module.model)  # on every rank: gathers the shards of a sharded model
    with unsharded(module.model):  # every rank gathers a sharded model; rank 0 scores the held-out pairs alone
        if not trainer.is_global_zero:
            return {}
        acc = heldout_accuracy(RewardScorer(module.model, tok, rm.target, max_length=rm.max_length), held_rows,
                               rm.mode)
    ctx.run.log_metrics({"heldout/accuracy": acc["accuracy"],
                         **{f"heldout/accuracy/{k}": v for k, v in acc["by_rejected_kind"].items()}})
    ctx.run.log_dict(acc, "heldout_accuracy.json")
    out = Path(ctx.out_dir)
    model_dir = export_hf(module.model, tok, out / "model", weights)
    ctx.run.log_hf_model(str(model_dir), name=ctx.model_name, params={
        "parameters": str(count_parameters(model)), "mode": str(rm.mode), "target": str(rm.target)})
    return {"steps": trainer.global_step, "final_metrics": final, "heldout": acc, "objective": acc["accuracy"]}
