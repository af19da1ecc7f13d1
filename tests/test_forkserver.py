"""The fork server (r1flow/harness/forkserver.py): a job run through it is the job in an
interpreter of its own — its arguments, directory, environment, streams, exit status, signals and
output bytes — and where no server may run it, it is exactly that command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_stage, upstream

from r1flow.harness import forkserver

# A module that reports what its process is, reads its stdin, writes to stderr, and ends as told
PROBE = textwrap.dedent("""
    import json, os, sys, time
    with open("/proc/self/cmdline") as f:
        title = f.read().replace("\\0", " ").strip()
    print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "argv": sys.argv, "probe": os.environ.get("PROBE"),
                      "stdin": sys.stdin.read(), "title": title}), flush=True)
    print("to stderr", file=sys.stderr)
    if os.environ.get("PROBE_SLEEP"):
        time.sleep(float(os.environ["PROBE_SLEEP"]))
    if os.environ.get("PROBE_RAISE"):
        raise RuntimeError("the probe failed")
    sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
""")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = forkserver.Server(str(tmp_path_factory.mktemp("forkserver") / "forkserver.log"))
    yield srv
    srv.stop()


@pytest.fixture
def probe_dir(tmp_path) -> Path:
    (tmp_path / "fsprobe.py").write_text(PROBE)
    return tmp_path


def start(probe_dir: Path, socket: str | None, stdin: str = "", **env) -> tuple[subprocess.Popen, dict]:
    """The probe through the client (``python -m r1flow.harness.forkserver -m fsprobe a 'b c'``),
    started in ``probe_dir``; returns the client and, once printed, the probe's report."""
    full = {k: v for k, v in os.environ.items() if k not in (forkserver.ENV, "SLURM_JOB_ID")}
    full.update({"PYTHONPATH": f"{probe_dir}{os.pathsep}{ROOT}", **env})
    if socket:
        full[forkserver.ENV] = socket
    proc = subprocess.Popen([sys.executable, "-m", "r1flow.harness.forkserver", "-m", "fsprobe", "a", "b c"],
                            cwd=probe_dir, env=full, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdin.write(stdin)
    proc.stdin.close()
    return proc, json.loads(proc.stdout.readline())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_job_through_the_server_has_its_own_arguments_directory_environment_streams_status_and_title(server,
                                                                                                       probe_dir):
    proc, report = start(probe_dir, server.socket, stdin="from stdin\n", PROBE="x", PROBE_EXIT="3")
    assert proc.wait(timeout=60) == 3
    assert report["pid"] != proc.pid, "it ran in a fork of the server, not in the client's process"
    assert report == {"pid": report["pid"], "cwd": str(probe_dir), "argv": [str(probe_dir / "fsprobe.py"), "a", "b c"],
                      "probe": "x", "stdin": "from stdin\n", "title": "python -m fsprobe a b c"}
    assert proc.stderr.read() == "to stderr\n"


def test_an_uncaught_exception_prints_its_traceback_and_exits_1(server, probe_dir):
    proc, report = start(probe_dir, server.socket, PROBE_RAISE="1")
    assert proc.wait(timeout=60) == 1 and report["pid"] != proc.pid
    assert "RuntimeError: the probe failed" in proc.stderr.read()


@pytest.mark.parametrize("where", ["no server", "a socket nobody serves", "inside a SLURM job",
                                   "another hub than the server's"])
def test_where_no_server_may_run_it_the_job_is_the_command_itself(where, server, probe_dir):
    """(The server's huggingface_hub read its endpoint when imported: through the server a job that
    sets HF_ENDPOINT would ask the server's hub.)"""
    socket = {"no server": None, "a socket nobody serves": str(probe_dir / "gone.sock")}.get(where, server.socket)
    env = {"inside a SLURM job": {"SLURM_JOB_ID": "42"},
           "another hub than the server's": {"HF_ENDPOINT": "http://127.0.0.1:9"}}.get(where, {})
    proc, report = start(probe_dir, socket, stdin="in\n", PROBE_EXIT="5", **env)
    assert proc.wait(timeout=60) == 5
    assert report["pid"] == proc.pid, "the client became the job (exec): the same process"
    assert report["argv"][1:] == ["a", "b c"] and report["stdin"] == "in\n"


def test_a_signal_to_the_client_ends_the_job_and_a_killed_client_takes_its_job_with_it(server, probe_dir):
    proc, report = start(probe_dir, server.socket, PROBE_SLEEP="60")
    proc.send_signal(signal.SIGTERM)  # as Snakemake cancels a job
    assert proc.wait(timeout=30) == -signal.SIGTERM, "the client ends as its job did: by SIGTERM"
    assert not alive(report["pid"])
    proc, report = start(probe_dir, server.socket, PROBE_SLEEP="60")
    proc.kill()  # no chance to pass anything on: the job's supervisor sees the connection close
    proc.wait()
    deadline = time.monotonic() + 30
    while alive(report["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(report["pid"])


def test_a_server_whose_run_ends_without_stopping_it_exits_and_removes_its_socket(tmp_path):
    """A Snakemake killed by SIGKILL runs no hook: its server sees its parent gone and cleans up."""
    code = ("import sys, time; from r1flow.harness import forkserver; "
            f"print(forkserver.Server({str(tmp_path / 'log')!r}).socket, flush=True); time.sleep(600)")
    run = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    socket = Path(run.stdout.readline().strip())
    assert socket.exists()
    run.kill()
    run.wait()
    deadline = time.monotonic() + 30
    while socket.parent.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not socket.parent.exists(), "the server removed its socket and directory on its way out"


def test_a_stage_through_the_server_writes_the_bytes_it_writes_in_an_interpreter_of_its_own(server, smoke_world,
                                                                                           tmp_path):
    """The cold start's SFT (training: its weights) and an evaluation (sampling at T 0.6: its
    samples) through the server, against the same commands in interpreters of their own (the
    smoke world's cold start was trained by one)."""
    res, env = smoke_world, {forkserver.ENV: server.socket}
    common = [f"results_dir={res}", f"io.data_dir={res}/data"]
    sft = [*common, f"io.init_model={res}/pretrain/model", upstream(data=f"{res}/data", pretrain=f"{res}/pretrain")]
    evaluate = [*common, f"io.init_model={res}/cold_start_sft/model", "io.label=cold_start_sft",
                upstream(cold_start_sft=f"{res}/cold_start_sft")]
    for stage, args, files, cold in (("cold_start_sft", sft, ["model/model.safetensors"], res / "cold_start_sft"),
                                     ("evaluate", evaluate, ["metrics.json", "samples.jsonl"], None)):
        if cold is None:
            cold = tmp_path / f"{stage}-cold"
            run_stage(stage, *args, f"io.out_dir={cold}", f"hydra.run.dir={cold}")
        warm = tmp_path / f"{stage}-warm"
        cmd = [sys.executable, "-m", "r1flow.harness.forkserver", "-m", f"stages.{stage}", "experiment=smoke", *args,
               f"io.out_dir={warm}", f"hydra.run.dir={warm}"]
        proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        for name in files:
            assert (warm / name).read_bytes() == (cold / name).read_bytes(), f"{stage}: {name}"


def test_the_server_has_imported_every_module_of_its_libraries_that_a_stage_imports():
    """After ``PRELOAD``, importing every stage imports nothing more of those packages: a job through
    the server pays only for the project's own modules."""
    code = textwrap.dedent("""
        import importlib, pathlib, sys
        from r1flow.harness.forkserver import PRELOAD
        for name in PRELOAD:
            importlib.import_module(name)
        before, libraries = set(sys.modules), {name.split(".")[0] for name in PRELOAD}
        for path in sorted(pathlib.Path("stages").glob("*.py")):
            importlib.import_module(f"stages.{path.stem}")
        print(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in libraries))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"imported by a stage, not preloaded: {out.stdout}"
