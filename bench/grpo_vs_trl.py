"""GRPO throughput: r1flow's GRPO module vs TRL's GRPOTrainer, side by side in one run.

    pip install -e '.[bench]'        # TRL is a benchmark-only extra
    python bench/grpo_vs_trl.py [--repeats 3] [--steps 12] [--prompts 16] [--group 8] [--max-new-tokens 64]
                                [--beta 0.04] [--template chat|r1_zero] [--variant NAME ...]
                                [--checkpoint results/tiny/cold_start_sft/model --questions results/tiny/data/train.jsonl]

Every variant trains the same tiny Qwen2 (same weights: freshly built, or ``--checkpoint``), on
the same prompts, with the same G, max new tokens, β, temperature, learning rate, one optimizer
step per rollout and the accuracy reward of the task's verifier. The variants: ours as configured
(the ``sdpa_gqa`` attention kernel, ``shared_prompt_forward``, rollouts that drop finished
samples, log-prob passes in ``length_buckets``), ours with rollouts by transformers' ``generate``,
ours without the shared prompt forward, ours with full-width log-prob passes, ours with all four
off (the code before them), ours one step off-policy (``async_rollout``: the next rollout sampled in
a process of its own on one core while the trainer updates on the other), TRL as it comes (transformers' ``sdpa``) and TRL
given our attention kernel. A freshly built policy's samples all run to the token limit; a trained
one's (``--checkpoint``: e.g. the tiny world's cold start, the start of reasoning RL) end at
different lengths, as in a real run. Each run is a subprocess of its own (so peak RSS is its own),
one after the other (2 cores: never side by side), and the variants take turns ``--repeats`` times.
Prints seconds per step and completion tokens per second (min / median / max over the repeats),
peak RSS, and the ratio of medians to TRL's. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

VARIANTS = {  # name -> (trainer, attention kernel, shared prompt forward, rollouts dropping finished samples,
    #                 length buckets of the log-prob passes, one step off-policy)
    "ours": ("ours", "sdpa_gqa", True, True, 4, False),
    "ours, one step off-policy": ("ours", "sdpa_gqa", True, True, 4, True),
    "ours, generate": ("ours", "sdpa_gqa", True, False, 4, False),
    "ours, unshared prompts": ("ours", "sdpa_gqa", False, True, 4, False),
    "ours, full-width passes": ("ours", "sdpa_gqa", True, True, 1, False),
    "ours, all four off": ("ours", "sdpa", False, False, 1, False),
    "TRL": ("trl", "sdpa", None, None, None, None),
    "TRL, sdpa_gqa": ("trl", "sdpa_gqa", None, None, None, None),
}


def setup(args):
    from r1flow.config import compose
    from r1flow.harness.models import build_model
    from r1flow.sampling.prompts import R1_ZERO_TEMPLATE
    from r1flow.world.corpus import make_split
    from r1flow.world.tokenizer import build_tokenizer

    cfg = compose([f"experiment={args.experiment}"])
    if args.checkpoint:  # a trained policy and its world's training questions
        from r1flow.harness.models import load_model, load_tokenizer

        items = [json.loads(line) for line in Path(args.questions).read_text().splitlines()[:512]]
        return cfg, items, load_tokenizer(args.checkpoint), load_model(args.checkpoint, cfg.model)
    items = make_split(cfg.data, "train", 512, 1)
    tok = build_tokenizer([it["question"] for it in items] + [R1_ZERO_TEMPLATE])
    torch.manual_seed(0)
    model = build_model(cfg.model, tok)
    return cfg, items, tok, model


def prompt_of(tok, args, question: str) -> str:
    from r1flow.sampling.prompts import render_prompt

    return render_prompt(tok, question, args.template)


def run_ours(args, attn: str = "sdpa_gqa", shared: bool = True, drop_finished: bool = True, buckets: int = 4,
             off_policy: bool = False) -> dict:
    import lightning as L
    from lightning.pytorch.callbacks import Callback
    from torch.utils.data import DataLoader

    from r1flow.sampling.rollout import HFGenerator
    from r1flow.train.grpo import GRPOModule

    cfg, items, tok, model = setup(args)
    model.config._attn_implementation = attn
    g = cfg.reasoning_rl
    g.shared_prompt_forward, g.length_buckets, g.async_rollout = shared, buckets, off_policy
    g.generation_batch_size = g.mini_batch_size = args.prompts * args.group
    g.group_size, g.mu, g.beta, g.max_new_tokens = args.group, 1, args.beta, args.max_new_tokens
    g.temperature, g.rewards = 1.0, {"accuracy": 1.0}
    g.optim.lr, g.optim.warmup_steps, g.optim.min_lr_ratio = 5e-5, 0, 1.0
    prompts = [prompt_of(tok, args, it["question"]) for it in items]
    module = GRPOModule(model, tok, g, items, prompts, HFGenerator(model, tok, progress=False,
                                                                   drop_finished=drop_finished))

    class Clock(Callback):
        def __init__(self):
            self.times, self.tokens = [], []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.times.append(time.perf_counter() - self.t)
            self.tokens.append(pl_module.rollout_stats["rollout/completion_tokens"])

    clock = Clock()
    trainer = L.Trainer(accelerator="cpu", max_steps=args.steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock])
    trainer.fit(module, DataLoader(range(args.steps), batch_size=1))
    return {"times": clock.times, "tokens": clock.tokens}


@contextmanager
def trl_trainer(args, attn: str = "sdpa", callbacks=()):
    """TRL's ``GRPOTrainer`` on the same model, prompts, reward and settings as ours (the accuracy
    reward of the task's verifier; TRL loads its reference model by path when beta > 0)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from r1flow.sampling.verify import is_correct

    cfg, items, tok, model = setup(args)
    by_prompt = {prompt_of(tok, args, it["question"]): it for it in items}
    ds = Dataset.from_list([{"prompt": p} for p in by_prompt])

    def accuracy(prompts, completions, **_):
        return [1.0 if is_correct(by_prompt[p], c) else 0.0 for p, c in zip(prompts, completions)]

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(f"{tmp}/init")
        tok.save_pretrained(f"{tmp}/init")
        targs = GRPOConfig(
            output_dir=tmp, use_cpu=True, bf16=False, report_to=[], save_strategy="no", logging_steps=1,
            max_steps=args.steps, per_device_train_batch_size=args.prompts * args.group,
            num_generations=args.group, max_completion_length=args.max_new_tokens, beta=args.beta,
            temperature=1.0, learning_rate=5e-5, lr_scheduler_type="constant", warmup_steps=0,
            gradient_accumulation_steps=1, num_iterations=1, dataloader_num_workers=0, seed=0,
            model_init_kwargs={"attn_implementation": attn, "dtype": torch.float32},
        )
        yield GRPOTrainer(model=f"{tmp}/init", reward_funcs=[accuracy], args=targs, train_dataset=ds,
                          processing_class=tok, callbacks=list(callbacks))


def run_trl(args, attn: str = "sdpa") -> dict:
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self):
            self.times, self.tokens = [], []

        def on_step_begin(self, a, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            self.times.append(time.perf_counter() - self.t)

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                self.tokens.append(logs["completions/mean_length"] * args.prompts * args.group)

    clock = Clock()
    with trl_trainer(args, attn, [clock]) as trainer:
        trainer.train()
    return {"times": clock.times, "tokens": clock.tokens}


def child(variant: str, args) -> None:
    trainer, attn, shared, drop, buckets, off_policy = VARIANTS[variant]
    out = run_ours(args, attn, shared, drop, buckets, off_policy) if trainer == "ours" else run_trl(args, attn)
    # with a sampler process (off-policy), its peak is added: an upper bound of the two at once
    out["peak_rss_mb"] = sum(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF,
                                                                         resource.RUSAGE_CHILDREN)) / 1024
    print("RESULT " + json.dumps(out))


def summarise(res: dict, warmup: int) -> tuple[float, float, float]:
    times, tokens = res["times"][warmup:], res["tokens"][warmup:]
    n = min(len(times), len(tokens))
    sec = sum(times) / len(times)
    tps = sum(tokens[:n]) / sum(times[:n])
    return sec, tps, res["peak_rss_mb"]


def add_rollout_args(ap: argparse.ArgumentParser) -> None:
    """The rollout's shape, shared with bench/step_profile.py: prompts per step, G, length, beta."""
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--beta", type=float, default=0.04)
    ap.add_argument("--template", choices=["chat", "r1_zero"], default="chat",
                    help="the prompts' template: the chat template (~26 tokens) or R1-Zero's (~110)")
    ap.add_argument("--checkpoint", help="start from this trained policy (else a freshly built one, whose "
                    "samples all run to the token limit)")
    ap.add_argument("--questions", help="with --checkpoint: its training questions (JSONL rows of the data stage)")


def run_child(variant: str, args) -> tuple[float, float, float] | str:
    cmd = [sys.executable, __file__, "--child", variant] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("child", "repeats", "variants") and v is not None]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not line:
        return proc.stderr[-3000:]
    return summarise(json.loads(line[0][7:]), args.warmup)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="tiny")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    add_rollout_args(ap)
    ap.add_argument("--variant", action="append", choices=list(VARIANTS), dest="variants",
                    help="run this variant (repeatable; default: all); TRL always runs")
    ap.add_argument("--child", choices=list(VARIANTS))
    args = ap.parse_args()
    if args.child:
        child(args.child, args)
        return
    chosen = set(args.variants or VARIANTS) | {"TRL"}
    runs: dict[str, list] = {v: [] for v in VARIANTS if v in chosen}
    for r in range(args.repeats):
        for variant in runs:  # the variants take turns: drift in the machine's speed hits all alike
            res = run_child(variant, args)
            if isinstance(res, str):
                raise SystemExit(f"{variant} failed:\n{res}")
            runs[variant].append(res)
            print(f"repeat {r + 1}: {variant}: {res[0]:.3f} s/step, {res[1]:,.0f} tokens/s", flush=True)
    start = f"from {args.checkpoint}" if args.checkpoint else "freshly built"
    print(f"\nGRPO step, tiny model {start}, {args.template} template, {args.prompts} prompts x G={args.group}, "
          f"<= {args.max_new_tokens} new tokens, beta={args.beta}, {args.steps - args.warmup} timed steps, "
          f"{args.repeats} runs each, torch threads {torch.get_num_threads()}\n")
    print("| variant | s/step (min / median / max) | tokens/s (min / median / max) | peak RSS MB | tokens/s vs TRL |")
    print("|---|---|---|---|---|")
    trl = statistics.median(x[1] for x in runs["TRL"])
    for variant, rows in runs.items():
        sec, tps = sorted(x[0] for x in rows), sorted(x[1] for x in rows)
        print(f"| {variant} | {sec[0]:.3f} / {statistics.median(sec):.3f} / {sec[-1]:.3f} | "
              f"{tps[0]:,.0f} / {statistics.median(tps):,.0f} / {tps[-1]:,.0f} | {max(x[2] for x in rows):,.0f} | "
              f"{statistics.median(tps) / trl:.2f}x |")


if __name__ == "__main__":
    main()
