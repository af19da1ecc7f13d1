"""Running a GRPO stage: load the policy, fit the GRPO module, export, plot, record.

Shared by ``stages.r1_zero``, ``stages.reasoning_rl`` and ``stages.all_scenario_rl``: they differ
in their config section and starting checkpoint; all-scenario RL adds general prompts scored by
reward models.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from r1flow.datafiles import file_digest, read_jsonl, write_json  # noqa: E402
from r1flow.evaluation import evaluate_split  # noqa: E402
from r1flow.grpo import GRPOModule  # noqa: E402
from r1flow.models import count_parameters, export_hf, load_model, load_tokenizer  # noqa: E402
from r1flow.reward_model import RewardScorer  # noqa: E402
from r1flow.rewards import harmlessness_rm, helpfulness_rm  # noqa: E402
from r1flow.rollout import HFGenerator, SamplingParams, make_generator  # noqa: E402
from r1flow.stage import StageContext  # noqa: E402
from r1flow.tasks import ITEM_KEYS, is_correct  # noqa: E402
from r1flow.tokenizer import render_prompt  # noqa: E402
from r1flow.training import build_trainer, drop_checkpoints, last_checkpoint  # noqa: E402

log = logging.getLogger("r1flow.grpo")


@contextlib.contextmanager
def check_sampler(module: GRPOModule, k: int, max_new_tokens: int, seed: int):
    """A sampler for checks during training: the eval spec's T and top-p, and the same sampling
    noise at every check (the training RNG is restored afterwards)."""
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield (HFGenerator(module.model, module.tok, prompts_per_batch=128, progress=False),
               SamplingParams(n=k, temperature=0.6, top_p=0.95, max_new_tokens=max_new_tokens))
    finally:
        torch.set_rng_state(state)


class HeldoutPassAt1(Callback):
    """Held-out pass@1 on a fixed subset every ``every`` steps (and before the first step)."""

    def __init__(self, items, prompts, k: int, max_new_tokens: int, every: int, run):
        self.items, self.prompts, self.k, self.every, self.run = items, prompts, k, every, run
        self.max_new_tokens = max_new_tokens

    def _evaluate(self, trainer, module: GRPOModule) -> None:
        if not trainer.is_global_zero:
            return
        with check_sampler(module, self.k, self.max_new_tokens, seed=1234) as (gen, params):
            m, _ = evaluate_split(gen, self.items, self.prompts, params, desc="heldout check")
        step = trainer.global_step
        metrics = {"eval/pass@1": m["pass@1"], "eval/format_rate": m["format_rate"],
                   "eval/mean_length": m["mean_length"], "eval/pass@k": m["pass@k"]}
        self.run.log_metrics(metrics, step=step)
        module.history.append({"step": step, **metrics})

    def on_train_start(self, trainer, module):
        if trainer.global_step == 0:
            self._evaluate(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.every and (step % self.every == 0 or step == trainer.max_steps):
            self._evaluate(trainer, module)


class GeneralScore(Callback):
    """General prompts of all-scenario RL before the first step, when the general phase starts and
    at the end: exact match (the verifier, where one exists; refusal without a leak for requests
    for a secret) and each reward model's mean score on k samples per held-out prompt."""

    def __init__(self, items, prompts, scorers: dict, k: int, max_new_tokens: int, phase_start: int, run):
        self.items, self.prompts, self.scorers, self.k, self.run = items, prompts, scorers, k, run
        self.max_new_tokens, self.phase_start = max_new_tokens, phase_start

    def _evaluate(self, trainer, module: GRPOModule) -> None:
        if not trainer.is_global_zero:
            return
        with check_sampler(module, self.k, self.max_new_tokens, seed=4321) as (gen, params):
            groups = gen.generate(self.prompts, params, desc="general check")
        items = [it for it, grp in zip(self.items, groups) for _ in grp]
        texts = [c.text for grp in groups for c in grp]
        correct = [is_correct(it, t) for it, t in zip(items, texts)]
        metrics = {"eval/general/exact": sum(correct) / len(correct)}
        for kind in sorted({it.get("kind", "general") for it in items}):
            rows = [ok for it, ok in zip(items, correct) if it.get("kind", "general") == kind]
            metrics[f"eval/general/{kind}/exact"] = sum(rows) / len(rows)
        for name, fn in (("helpfulness_rm", helpfulness_rm), ("harmlessness_rm", harmlessness_rm)):
            if name in self.scorers:
                scores = fn(texts, items, scorer=self.scorers[name])
                metrics[f"eval/general/{name}"] = sum(scores) / len(scores)
        self.run.log_metrics(metrics, step=trainer.global_step)
        module.history.append({"step": trainer.global_step, **metrics})

    def on_train_start(self, trainer, module):
        if trainer.global_step == 0:
            self._evaluate(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if 0 < trainer.global_step == self.phase_start < trainer.max_steps:
            self._evaluate(trainer, module)

    def on_train_end(self, trainer, module):
        self._evaluate(trainer, module)


class SampleTable(Callback):
    """A table of the rollout's completions every ``every`` steps, as an MLflow artifact."""

    def __init__(self, every: int, run, rows: int = 64):
        self.every, self.run, self.rows = every, run, rows

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        if trainer.is_global_zero and self.every and (step % self.every == 1 or self.every == 1):
            self.run.log_table(module.last_samples[: self.rows], f"samples/step_{step:05d}.json")


def plot_curves(history: list[dict], title: str, path: Path) -> None:
    """Reward, held-out pass@1 and response length over steps."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    series = [("reward", "reward (train rollouts)"), ("eval/pass@1", "held-out pass@1 (subset)"),
              ("completions/mean_length", "mean response length (tokens)")]
    for ax, (key, label) in zip(axes, series):
        pts = [(h["step"], h[key]) for h in history if key in h]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o" if key.startswith("eval") else None, lw=1.2)
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_grpo(ctx: StageContext, section: str, init_model: str) -> dict:
    cfg = ctx.cfg
    g = cfg[section]
    tok = load_tokenizer(init_model, cfg.model.trust_remote_code)
    data_dir = Path(cfg.io.data_dir)
    train_path, eval_path = data_dir / "train.jsonl", data_dir / "heldout.jsonl"
    items = read_jsonl(train_path, required=ITEM_KEYS)
    eval_items = read_jsonl(eval_path, required=ITEM_KEYS)[: g.eval_prompts]
    ctx.run.log_dataset(str(train_path), name=f"{cfg.name}/train", digest=file_digest(train_path), context="train",
                        num_rows=len(items))
    prompts = [render_prompt(tok, it["question"], g.template) for it in items]
    eval_prompts = [render_prompt(tok, it["question"], g.template) for it in eval_items]
    policy = load_model(init_model, cfg.model, cfg.trainer.accelerator)
    generator = make_generator(g.rollout, policy, tok, init_model, progress=False)
    general_items, general_eval, scorers = [], [], {}
    if g.general_prompt_frac > 0 and g.general_last_steps > 0:  # all-scenario RL
        for name, context in (("general_train", "train"), ("safety_train", "train"), ("general", "eval"),
                              ("safety", "eval")):
            path = data_dir / f"{name}.jsonl"
            rows = read_jsonl(path, required=ITEM_KEYS)
            ctx.run.log_dataset(str(path), name=f"{cfg.name}/{name}", digest=file_digest(path), context=context,
                                num_rows=len(rows))
            (general_items if context == "train" else general_eval).extend(rows)
        for name, path in g.reward_models.items():
            rm_tok = load_tokenizer(path, cfg.model.trust_remote_code)
            rm = load_model(path, cfg.model, cfg.trainer.accelerator, scalar_head=True, pad_token_id=rm_tok.pad_token_id)
            scorers[name] = RewardScorer(rm.requires_grad_(False), rm_tok, cfg[name].target)
    general_prompts = [render_prompt(tok, it["question"], g.template) for it in general_items]
    module = GRPOModule(policy, tok, g, items, prompts, generator, seed=cfg.seed, general_items=general_items,
                        general_prompts=general_prompts, scorers=scorers)
    callbacks = [SampleTable(g.table_every, ctx.run)]
    if g.eval_every:
        callbacks.append(HeldoutPassAt1(eval_items, eval_prompts, g.eval_k, g.max_new_tokens, g.eval_every, ctx.run))
    if general_eval:
        callbacks.append(GeneralScore(general_eval, [render_prompt(tok, it["question"], g.template) for it in general_eval],
                                      scorers, g.eval_k, g.max_new_tokens, g.max_steps - g.general_last_steps, ctx.run))
    tcfg = cfg.trainer.copy()
    tcfg.log_every_n_steps = 1
    trainer = build_trainer(tcfg, ctx.out_dir, ctx.run.lightning_logger(), max_steps=g.max_steps, grad_clip=None,
                            val_every=None, ckpt_every=g.ckpt_every, callbacks=callbacks)
    resume = last_checkpoint(ctx.out_dir, ctx.config_digest)
    if resume:
        log.info("resuming from %s", resume)
    ctx.run.log_params({"model/parameters": count_parameters(policy), "grpo/steps_per_rollout": module.steps_per_rollout})
    steps = DataLoader(range(g.max_steps), batch_size=1)  # steps are driven by the module's prompt stream
    trainer.fit(module, steps, ckpt_path=resume)
    if not trainer.is_global_zero:
        return {}
    out = Path(ctx.out_dir)
    model_dir = export_hf(module.model, tok, out / "model")
    ctx.run.log_hf_model(str(model_dir), name=ctx.model_name, params={"steps": str(trainer.global_step)})
    drop_checkpoints(out)
    title = f"{ctx.stage} ({cfg.name}{', student ' + cfg.student if cfg.student else ''})"
    plot_curves(module.history, title, out / "curves.png")
    ctx.run.log_artifact(str(out / "curves.png"))
    write_json(out / "history.json", module.history)  # the report's RL curves
    general = [h for h in module.history if "eval/general/exact" in h]
    evals = [h for h in module.history if "eval/pass@1" in h]
    rewards = [h["reward"] for h in module.history if "reward" in h]
    return {
        "objective": evals[-1]["eval/pass@1"] if evals else None,  # held-out pass@1 (subset), for sweeps
        "steps": trainer.global_step,
        "heldout_subset_pass@1": {"first": evals[0]["eval/pass@1"], "last": evals[-1]["eval/pass@1"]} if evals else None,
        "reward": {"first": rewards[0], "last": rewards[-1]} if rewards else None,
        "general": ({"first": general[0], "phase_start": general[1] if len(general) > 2 else None,
                     "last": general[-1]} if general else None),
    }
