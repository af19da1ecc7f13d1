"""A compiled generation path on CPU: transformers' ``generate`` with a static KV cache whose forward
is compiled by TorchInductor, against eager ``generate`` and r1flow's decode loop (the HF backend's
default), side by side in one run.

    python bench/compiled_generate.py [--repeats 4] [--prompts 16] [--group 8] [--max-new-tokens 64]
                                      [--checkpoint results/tiny/cold_start_sft/model
                                       --questions results/tiny/data/train.jsonl]

The rollout of bench/grpo_vs_trl.py (its arguments): 16 prompts × G 8, T 1, ≤ 64 new tokens, on its
tiny Qwen2 (freshly built, or ``--checkpoint``), 2 threads, fp32. transformers compiles the forward of a
static cache only on accelerators unless ``CompileConfig._compile_all_devices`` is set, which this
benchmark sets; the first call pays the compilation. Each variant runs in a process of its own, one
after the other; prints the first call's seconds and the median tokens/s of the calls after it.
Run it alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from grpo_vs_trl import add_rollout_args, prompt_of, setup

VARIANTS = ("r1flow decode loop", "generate, eager", "generate, static cache compiled")


def worker(args) -> None:
    import torch
    from transformers import CompileConfig

    from r1flow.sampling.rollout import HFGenerator, SamplingParams

    torch.set_num_threads(2)
    cfg, items, tok, model = setup(args)
    model.config._attn_implementation = "sdpa_gqa" if args.worker == VARIANTS[0] else "sdpa"
    prompts = [prompt_of(tok, args, it["question"]) for it in items[: args.prompts]]
    # the HF backend's two paths: its decode loop, or transformers' generate (drop_finished off)
    gen = HFGenerator(model, tok, prompts_per_batch=64, progress=False, drop_finished=args.worker == VARIANTS[0])
    params = SamplingParams(n=args.group, temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens)
    if args.worker == VARIANTS[2]:  # generate reads both from the model's generation config
        compile_config = CompileConfig(dynamic=False, mode="default", fullgraph=False)
        compile_config._compile_all_devices = True  # transformers' switch to compile on CPU too
        model.generation_config.cache_implementation = "static"
        model.generation_config.compile_config = compile_config

    def tokens() -> int:
        return sum(c.length for group in gen.generate(prompts, params) for c in group)

    torch.manual_seed(0)
    t0 = time.perf_counter()
    tokens()
    first = time.perf_counter() - t0
    rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        n = tokens()
        rates.append(n / (time.perf_counter() - t0))
    print(json.dumps({"first_s": first, "tokens_per_s": statistics.median(rates)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=4, help="timed calls after the first")
    ap.add_argument("--experiment", default="tiny")
    add_rollout_args(ap)
    ap.add_argument("--worker", choices=VARIANTS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    print("| variant | first call (s) | tokens/s after it | vs r1flow's loop |\n|---|---|---|---|")
    base = None
    for variant in VARIANTS:
        cmd = [sys.executable, __file__, "--worker", variant, *sys.argv[1:]]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{variant} failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        base = base or res["tokens_per_s"]
        print(f"| {variant} | {res['first_s']:.1f} | {res['tokens_per_s']:,.0f} | {res['tokens_per_s'] / base:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
