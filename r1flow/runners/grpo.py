"""The runner of the GRPO stages (R1-Zero, reasoning RL, all-scenario RL): load the policy, fit the
GRPO module (r1flow/train/grpo.py), export, plot, record.

The three stages differ in their config section and their edges (r1flow/dag.py); all-scenario RL
adds general prompts, scored by the reward models it reads upstream.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch.utils.data import DataLoader

from r1flow.dag import BY_NAME, GENERAL_FILES, Kind
from r1flow.harness.checkpoints import last_checkpoint
from r1flow.harness.entry import StageContext
from r1flow.harness.files import file_digest, read_jsonl, write_json
from r1flow.harness.models import count_parameters, export_hf, full_state_dict, load_model, load_tokenizer
from r1flow.report.plots import plot_rl_curves
from r1flow.sampling.prompts import item_prompt, think_prefill
from r1flow.sampling.rewards import check_rewards
from r1flow.sampling.rollout import make_generator
from r1flow.sampling.verify import ITEM_KEYS
from r1flow.train.grpo import GRPOModule
from r1flow.train.grpo_checks import GeneralScore, SampleTable, ValidationPassAt1
from r1flow.train.reward_model import RewardScorer
from r1flow.train.trainer import build_trainer

log = logging.getLogger("r1flow.grpo")


def reward_models(ctx: StageContext) -> dict[str, Path]:
    """The reward models this stage reads upstream: reward name (= the RM stage) -> checkpoint."""
    return {name: d / "model" for name, d in ctx.upstream.items() if BY_NAME[name].kind is Kind.reward_model}


def read_items(ctx: StageContext, name: str, context: str) -> list[dict]:
    """The task rows of data file ``name``, logged as a dataset of the run."""
    path = ctx.data_file(name)
    rows = read_jsonl(path, required=ITEM_KEYS)
    ctx.run.log_dataset(str(path), name=f"{ctx.cfg.name}/{name}", digest=file_digest(path), context=context,
                        num_rows=len(rows))
    return rows


def general_inputs(ctx: StageContext, g) -> tuple[list[dict], list[dict], dict]:
    """All-scenario RL's general prompts (train, validation) and reward-model scorers; none otherwise."""
    if not (g.general_prompt_frac > 0 and g.general_last_steps > 0):
        return [], [], {}
    rows = {name: read_items(ctx, name, context) for name, context in GENERAL_FILES.items()}
    scorers = {}
    for name, path in reward_models(ctx).items():
        cfg = ctx.cfg
        rm_tok = load_tokenizer(str(path), cfg.model.trust_remote_code)
        rm = load_model(str(path), cfg.model, cfg.trainer.accelerator, scalar_head=True, pad_token_id=rm_tok.pad_token_id)
        scorers[name] = RewardScorer(rm.requires_grad_(False), rm_tok, cfg[name].target, max_length=cfg[name].max_length)
    return (rows["general_train"] + rows["safety_train"], rows["general_validation"] + rows["safety_validation"],
            scorers)


def summary(module: GRPOModule, steps: int) -> dict:
    """What done.json keeps of a GRPO run: first and last validation checks, rewards, general scores."""
    general = [h for h in module.history if "val/general/exact" in h]
    evals = [h for h in module.history if "val/pass@1" in h]
    rewards = [h["reward"] for h in module.history if "reward" in h]
    return {
        "objective": evals[-1]["val/pass@1"] if evals else None,  # validation pass@1: the sweeps' objective
        "steps": steps,
        "validation_pass@1": {"first": evals[0]["val/pass@1"], "last": evals[-1]["val/pass@1"]} if evals else None,
        "reward": {"first": rewards[0], "last": rewards[-1]} if rewards else None,
        "general": ({"first": general[0], "phase_start": general[1] if len(general) > 2 else None,
                     "last": general[-1]} if general else None),
    }


def run_grpo(ctx: StageContext) -> dict:
    cfg, g = ctx.cfg, ctx.cfg[ctx.stage]
    check_rewards(ctx.stage, g, set(reward_models(ctx)))  # before any compute
    tok = load_tokenizer(ctx.init, cfg.model.trust_remote_code)
    if g.template == "chat":
        think_prefill(tok)  # a template without a generation prompt fails here, before any compute
    items = read_items(ctx, "train", "train")
    eval_items = read_items(ctx, "validation", "validation")[: g.eval_prompts] if g.eval_every else []
    prompt = lambda it: item_prompt(tok, it, g.template)  # noqa: E731
    policy = load_model(ctx.init, cfg.model, cfg.trainer.accelerator)
    generator = make_generator(g.rollout, policy, tok, ctx.init, progress=False, follow_policy=True,
                               seed=cfg.seed)
    general_items, general_eval, scorers = general_inputs(ctx, g)
    module = GRPOModule(policy, tok, g, items, [prompt(it) for it in items], generator, seed=cfg.seed,
                        general_items=general_items, general_prompts=[prompt(it) for it in general_items],
                        scorers=scorers)
    callbacks = [SampleTable(g.table_every, ctx.run)]
    if g.eval_every:
        callbacks.append(ValidationPassAt1(eval_items, [prompt(it) for it in eval_items], g.eval_k, g.max_new_tokens,
                                        g.eval_every, ctx.run))
    if general_eval:
        callbacks.append(GeneralScore(general_eval, [prompt(it) for it in general_eval], scorers, g.eval_k,
                                      g.max_new_tokens, g.max_steps - g.general_last_steps, ctx.run))
    tcfg = cfg.trainer.copy()
    tcfg.log_every_n_steps = 1
    trainer = build_trainer(tcfg, ctx.out_dir, ctx.run.lightning_logger(), max_steps=g.max_steps, grad_clip=None,
                            val_every=None, ckpt_every=g.ckpt_every, callbacks=callbacks)
    resume = last_checkpoint(ctx.out_dir, ctx.config_digest, ctx.run.run_id)
    ctx.run.log_params({"model/parameters": count_parameters(policy), "grpo/steps_per_rollout": module.steps_per_rollout})
    steps = DataLoader(range(g.max_steps), batch_size=1)  # steps are driven by the module's prompt stream
    trainer.fit(module, steps, ckpt_path=resume)
    weights = full_state_dict(module.model)  # on every rank: gathers the shards of a sharded model
    if not trainer.is_global_zero:
        return {}
    out = Path(ctx.out_dir)
    model_dir = export_hf(module.model, tok, out / "model", weights)
    ctx.run.log_hf_model(str(model_dir), name=ctx.model_name, params={"steps": str(trainer.global_step)})
    title = f"{ctx.stage} ({cfg.name}{', student ' + cfg.student if cfg.student else ''})"
    plot_rl_curves({ctx.stage: module.history}, out / "curves.png", title=title)
    ctx.run.log_artifact(str(out / "curves.png"))
    write_json(out / "history.json", module.history)  # the report's RL curves
    return summary(module, trainer.global_step)
