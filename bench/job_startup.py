"""What a job pays before it does any work: the import of its stage module, in a fresh interpreter.

    .venv/bin/python bench/job_startup.py [--repeats 5]

Every Snakemake job is a new ``python -m stages.<name>`` process, so its imports are paid once per
job (on a cluster, once per SLURM job, after Snakemake's own start inside the allocation). The
light jobs (data, report, a curation's shards and merge) compute nothing with torch and import
neither torch nor Lightning; a training stage needs both. Printed side by side, measured in one run
and alternated: each stage module, and as peers the floor every tracked Hydra job pays (hydra and
mlflow) and what Lightning alone costs (which the light jobs no longer import).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "floor: import hydra, mlflow": "import hydra, mlflow",
    "peer: import lightning": "import lightning",
    "stages.report (light)": "import stages.report",
    "stages.data (light)": "import stages.data",
    "stages.rejection_sampling (shards, merge: light)": "import stages.rejection_sampling",
    "stages.cold_start_sft (training)": "import stages.cold_start_sft",
}


def once(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    for code in CASES.values():  # warm the page cache and the bytecode
        once(code)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.repeats):  # alternated, so that a slow moment of the machine hits every case
        for name, code in CASES.items():
            times[name].append(once(code))
    print(f"| process start + import ({args.repeats} runs) | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} | {max(ts):.2f} |")


if __name__ == "__main__":
    main()
