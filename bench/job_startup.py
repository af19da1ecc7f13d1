"""What a job pays before it does any work: the import of its stage module, in a fresh interpreter
and through the run's fork server.

    .venv/bin/python bench/job_startup.py [--repeats 5]

Every Snakemake job is a new ``python -m stages.<name>`` process, so its imports are paid once per
job (on a cluster, once per SLURM job, after Snakemake's own start inside the allocation). The
light jobs (data, report, a curation's shards and merge) compute nothing with torch and import
neither torch nor Lightning; a training stage needs both. A local run starts its jobs through a
fork server that has imported the libraries once (r1flow/harness/forkserver.py): there a job pays
its client's start, a fork and the project's own modules. Printed side by side, measured in one
run and alternated: each stage module in a fresh interpreter, the training and the light stage
through a fork server, and as peers the floor every tracked Hydra job pays (hydra and mlflow) and
what Lightning alone costs (which the light jobs no longer import).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from r1flow.harness import forkserver
from r1flow.harness.code import ROOT

FRESH = {
    "floor: import hydra, mlflow": "import hydra, mlflow",
    "peer: import lightning": "import lightning",
    "stages.report (light)": "import stages.report",
    "stages.data (light)": "import stages.data",
    "stages.rejection_sampling (shards, merge: light)": "import stages.rejection_sampling",
    "stages.cold_start_sft (training)": "import stages.cold_start_sft",
}
FORKED = {  # run as a job runs through the server: python -m r1flow.harness.forkserver -m MODULE
    "stages.cold_start_sft (training), through the fork server": "import stages.cold_start_sft",
    "stages.report (light), through the fork server": "import stages.report",
}


def once(argv: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = forkserver.Server(f"{tmp}/forkserver.log")
        env = {**os.environ, forkserver.ENV: server.socket, "PYTHONPATH": os.pathsep.join([tmp, str(ROOT)])}
        cases = {name: (["-c", code], None) for name, code in FRESH.items()}
        for i, (name, code) in enumerate(FORKED.items()):  # a module that imports the stage's, as a job's entry
            Path(tmp, f"startup_case_{i}.py").write_text(code + "\n")
            cases[name] = (["-m", "r1flow.harness.forkserver", "-m", f"startup_case_{i}"], env)
        try:
            for argv, case_env in cases.values():  # warm the page cache, the bytecode and the server
                once(argv, case_env)
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.repeats):  # alternated, so that a slow moment of the machine hits every case
                for name, (argv, case_env) in cases.items():
                    times[name].append(once(argv, case_env))
        finally:
            server.stop()
    print(f"| process start + import ({args.repeats} runs) | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} | {max(ts):.2f} |")


if __name__ == "__main__":
    main()
