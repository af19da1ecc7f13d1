"""What one step off-policy (``async_rollout``) does to reasoning RL: the stage both ways, side by side.

    .venv/bin/python bench/off_policy_learning.py [--results results/tiny] [--seeds 0 1] [--out /tmp/off_policy]

Runs the reasoning-RL stage of a finished world (its data and cold start: ``snakemake --cores 2
results/tiny/cold_start_sft/done.json`` makes them) on-policy and one step off-policy, for each RL
seed, one run at a time on 2 torch threads (the off-policy run: one for the trainer, one for its
sampler process). Prints, per run, the validation pass@1 of every in-training check (validation
prompts, never held-out), the mean reward of the first and last ten steps, the median seconds of a
step (and of its update, sampling and reference pass), the stage's wall time and the share of
clipped tokens; writes their curves to ``<out>/curves.png``. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from r1flow.report.plots import plot_rl_curves

ROOT = Path(__file__).resolve().parent.parent
MODES = {"on-policy": [], "one step off-policy": ["reasoning_rl.async_rollout=true"]}


def run(results: Path, out: Path, seed: int, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "stages.reasoning_rl", "experiment=tiny", f"seed={seed}", f"results_dir={results}",
           f"io.data_dir={results}/data", f"io.out_dir={out}", f"io.init_model={results}/cold_start_sft/model",
           f"hydra.run.dir={out}", "trainer.num_threads=2", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def row(name: str, history: list[dict], wall: float) -> str:
    checks = " ".join(f"{h['step']}: {100 * h['val/pass@1']:.1f}" for h in history if "val/pass@1" in h)
    steps = [h for h in history if "loss" in h]
    median = lambda key: statistics.median(h[key] for h in steps)  # noqa: E731
    rewards = [h["reward"] for h in steps if "reward" in h]
    clipped = statistics.mean(h["clip_ratio/low_mean"] + h["clip_ratio/high_mean"] for h in steps)
    return (f"| {name} | {checks} | {statistics.mean(rewards[:10]):.3f} → {statistics.mean(rewards[-10:]):.3f} | "
            f"{median('timing/step'):.3f} ({median('timing/update'):.3f} / {median('timing/gen'):.3f} / "
            f"{median('timing/ref'):.3f}) | {wall:.0f} | {clipped:.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "results" / "tiny")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, default=Path("/tmp/off_policy"))
    args = ap.parse_args()
    histories, lines = {}, []
    for seed in args.seeds:
        for mode, extra in MODES.items():
            out = args.out / f"{mode.replace(' ', '_')}_seed{seed}"
            wall = run(args.results.resolve(), out, seed, extra)
            histories[f"{mode}, seed {seed}"] = json.loads((out / "history.json").read_text())
            lines.append(row(f"{mode}, seed {seed}", histories[f"{mode}, seed {seed}"], wall))
            print(lines[-1], flush=True)
    print("\n| run | validation pass@1 by step | reward, first → last 10 steps | s/step, median (update / "
          "sampling / reference) | stage wall, s | clipped tokens |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))
    plot_rl_curves(histories, args.out / "curves.png", title="reasoning RL: on-policy vs one step off-policy")
    print(f"\ncurves: {args.out / 'curves.png'}")


if __name__ == "__main__":
    main()
