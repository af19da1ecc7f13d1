"""Threads per job on this machine: one 2-thread job against two 1-thread jobs side by side.

    python bench/job_threads.py [--prompts 256] [--k 8] [--hidden 128]

The workload is what evaluation and RL rollouts do most: sampling k completions per prompt with
transformers' ``generate`` from a freshly built tiny model (the tiny experiment's architecture,
untrained, so responses run to the token limit and every side does the same work). It runs (a) once
in one process with 2 torch threads, then (b) in two processes at once with 1 thread each, and
prints each side's tokens/s and the ratio (b)/(a) — the reason the Snakefile gives every job one
core by default (``job_threads``). Run it alone: anything else on the 2 cores skews both sides.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def worker(threads: int, prompts: int, k: int, hidden: int, max_new_tokens: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from r1flow.config import compose
    from r1flow.harness.models import build_model
    from r1flow.sampling.prompts import render_prompt
    from r1flow.sampling.rollout import HFGenerator, SamplingParams
    from r1flow.world.corpus import make_split
    from r1flow.world.tokenizer import build_tokenizer

    cfg = compose(["experiment=tiny", f"model.hidden_size={hidden}"])
    items = make_split(cfg.data, "heldout", prompts, 2)
    tok = build_tokenizer([f"{it['question']} {it['answer']}" for it in items])
    torch.manual_seed(0)
    model = build_model(cfg.model, tok).eval()
    gen = HFGenerator(model, tok, prompts_per_batch=64, progress=False)
    params = SamplingParams(n=k, temperature=0.6, top_p=0.95, max_new_tokens=max_new_tokens)
    texts = [render_prompt(tok, it["question"]) for it in items]
    t0 = time.perf_counter()
    groups = gen.generate(texts, params)
    dt = time.perf_counter() - t0
    tokens = sum(c.length for g in groups for c in g)
    print(json.dumps({"threads": threads, "seconds": dt, "tokens": tokens}), flush=True)


def launch(threads: int, args) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--worker", str(threads), "--prompts", str(args.prompts), "--k", str(args.k),
           "--hidden", str(args.hidden), "--max-new-tokens", str(args.max_new_tokens)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"worker failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.prompts, args.k, args.hidden, args.max_new_tokens)
    one = result(launch(2, args))
    pair = [launch(1, args), launch(1, args)]
    two = [result(p) for p in pair]
    wall = max(r["seconds"] for r in two)  # each worker times its own sampling (imports excluded)
    a = one["tokens"] / one["seconds"]
    b = sum(r["tokens"] / r["seconds"] for r in two)  # two workers sampling at the same time
    print(f"{'setup':<34} {'wall s':>8} {'tokens':>8} {'tok/s':>8}")
    print(f"{'one job, 2 threads':<34} {one['seconds']:>8.1f} {one['tokens']:>8} {a:>8.0f}")
    print(f"{'two jobs at once, 1 thread each':<34} {wall:>8.1f} {sum(r['tokens'] for r in two):>8} {b:>8.0f}")
    print(f"ratio (two 1-thread jobs / one 2-thread job): {b / a:.2f}")


if __name__ == "__main__":
    main()
