"""A fork server for the jobs of a local run: the third-party imports paid once per run, not per job.

Every Snakemake job is a new ``python -m stages.<name>`` process, and before any work it imports
torch, transformers, Lightning, MLflow, reasoning-gym and the rest: ~7 s of one core per job
(``bench/job_startup.py``), ~40 jobs in the tiny run. A local run starts this server once
(rules/common.smk, ``onstart``); it imports those libraries (``PRELOAD``) and forks a worker for
each job that asks, in which the stage starts with them already imported::

    python -m r1flow.harness.forkserver serve SOCKET       # the server (the Snakefile starts it)
    python -m r1flow.harness.forkserver -m stages.NAME ...  # what a job runs: python -m stages.NAME ...

How a job runs through it. The client (the job's process) connects to the Unix socket named by
``$R1FLOW_FORKSERVER`` and sends its command line, working directory, environment and ``sys.path``,
and its stdin, stdout and stderr as file descriptors. The server forks a supervisor for the job,
which forks the worker: the worker takes the descriptors, directory, environment and arguments,
reseeds Python's and NumPy's global generators as a new process would seed them, and runs the
module as ``__main__`` (``runpy``), then exits as an interpreter does (waiting for its threads,
running its exit handlers). The supervisor reports the worker's exit status and the client exits
with it. A signal the client receives (Snakemake cancelling the job, Ctrl-C) is passed on to the
worker; if the client dies, the supervisor terminates the worker.

What the job shares with the server: only the third-party modules imported before the fork. The
project's code (``r1flow``, ``stages``, ``tracking``) is imported by each worker from disk, so a
job runs the code of the moment it starts, as a new interpreter does, and the stages' outputs are
the same bytes (tests/test_forkserver.py). The server runs no torch operation: a fork of a process
whose OpenMP thread pool is running can deadlock, and a worker sets its own threads.

The client starts the job in a new interpreter of its own instead (``os.execv``), the same
command, when no server answers (``$R1FLOW_FORKSERVER`` unset, the server not started or gone),
inside a SLURM job (the job must run in its allocation, under ``srun``), when the server runs
another interpreter (a job in a conda or container environment of its own), or when the job's
environment sets what the server's libraries read at import otherwise (``IMPORT_TIME_ENV``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

from setproctitle import setproctitle

ENV = "R1FLOW_FORKSERVER"  # the server's socket, for the jobs (rules/common.smk sets it)
# What a stage imports that takes time, in the order a stage imports it (tests/test_forkserver.py
# checks that the stages import nothing more of these packages)
PRELOAD = (
    "numpy", "torch", "transformers", "transformers.modeling_utils", "transformers.generation",
    "transformers.models.auto.modeling_auto", "transformers.models.auto.tokenization_auto",
    "transformers.models.qwen2.modeling_qwen2", "transformers.models.llama.configuration_llama",
    "lightning.pytorch", "torchmetrics", "mlflow", "hydra", "omegaconf", "datasets", "reasoning_gym",
    "math_verify", "sympy", "matplotlib", "matplotlib.backends.backend_agg", "scipy.special",
)
# Settings that the preloaded libraries read once, when imported (huggingface_hub's endpoint, cache
# and offline mode, transformers' switches), and Python's hash seed: a job whose values differ from
# the server's would run with the server's, so it runs in an interpreter of its own. (Thread counts,
# which Snakemake sets per job, are set by the stage itself: r1flow/harness/entry.py.)
IMPORT_TIME_ENV = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "PYTHONHASHSEED")
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
STDIO = 3  # stdin, stdout, stderr: the descriptors a job passes


# ------------------------------------------------------------------------------------ messages
def send(conn: socket.socket, msg: dict, fds: list[int] | None = None) -> None:
    """One length-prefixed JSON message, with file descriptors attached (SCM_RIGHTS)."""
    data = json.dumps(msg).encode()
    data = struct.pack("!I", len(data)) + data
    if fds:
        socket.send_fds(conn, [data[:1]], fds)
        data = data[1:]
    conn.sendall(data)


def recv(conn: socket.socket, nfds: int = 0) -> tuple[dict | None, list[int]]:
    """The next message and its descriptors; ``None`` if the peer closed the connection first."""
    fds: list[int] = []
    if nfds:
        first, fds, _, _ = socket.recv_fds(conn, 1, nfds)
        if not first:
            return None, fds
        head = first + _exactly(conn, 3)
    else:
        head = _exactly(conn, 4)
    if len(head) < 4:
        return None, fds
    body = _exactly(conn, struct.unpack("!I", head)[0])
    return json.loads(body), fds


def _exactly(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


# ------------------------------------------------------------------------------------ client
def interpreter() -> dict:
    """What must match for a job to run in the server's interpreter."""
    return {"executable": os.path.realpath(sys.executable), "prefix": sys.prefix, "version": sys.version}


def client(argv: list[str]) -> int:
    """Run ``python *argv`` through the server if one answers, else in this process's place."""
    path = os.environ.get(ENV)
    if path and "SLURM_JOB_ID" not in os.environ:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
        except OSError:
            conn.close()
        else:
            status = through(conn, argv)
            if status is not None:
                return status
    os.execv(sys.executable, [sys.executable, *argv])


def through(conn: socket.socket, argv: list[str]) -> int | None:
    """The job's exit status (negative: the signal that ended it), or None if the server declined
    or went away before starting it."""
    send(conn, {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "path": sys.path,
                "interpreter": interpreter()}, fds=list(range(STDIO)))
    started, _ = recv(conn)
    if not started or "pid" not in started:
        return None
    pid = started["pid"]
    for sig in SIGNALS:
        signal.signal(sig, lambda s, _frame: os.kill(pid, s))
    done, _ = recv(conn)
    if done is None:  # the supervisor is gone (killed): the worker's status is lost
        print("r1flow forkserver: the job's supervisor ended without its status", file=sys.stderr)
        return 1
    return done["status"]


def exit_as(status: int) -> None:
    """Exit with the worker's status; a worker ended by a signal ends this process by it too."""
    end_by_signal(status)
    sys.exit(status)


def end_by_signal(status: int) -> None:
    """For a negative status (an exit code's convention for "ended by signal -status"), end this
    process by that signal, as the process whose status it is ended."""
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)


# ------------------------------------------------------------------------------------ server
class Server:
    """A run's server, started by the Snakefile (``onstart``) and stopped when the run ends: its
    socket is in a new private directory; its output goes to ``log``."""

    def __init__(self, log: str):
        import subprocess
        import tempfile
        import time

        self.dir = tempfile.mkdtemp(prefix="r1flow-forkserver-")
        self.socket = os.path.join(self.dir, "socket")
        os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
        from r1flow.harness.code import ROOT

        with open(log, "w") as out:  # run from this checkout (the workers import the jobs' own code)
            self.proc = subprocess.Popen([sys.executable, "-m", "r1flow.harness.forkserver", "serve", self.socket],
                                         cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # Ctrl-C reaches jobs through their clients
        deadline = time.monotonic() + 10  # bound before its imports: jobs started now queue for it
        while not os.path.exists(self.socket) and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        import shutil
        import subprocess

        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def serve(path: str) -> None:
    """Import ``PRELOAD``, then fork a supervisor for each connection until the parent process (the
    Snakemake run) ends or SIGTERM arrives. The socket is bound first: a job that connects while
    the libraries import waits for them rather than starting an interpreter of its own."""
    import importlib
    import threading

    setproctitle(f"r1flow forkserver {path}")
    parent = os.getppid()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(128)
    for name in PRELOAD:
        importlib.import_module(name)
    if threading.active_count() > 1:  # a fork copies one thread: the others' locks could stay held
        raise SystemExit(f"r1flow forkserver: importing {PRELOAD} started threads {threading.enumerate()}; "
                         "not serving (the jobs start interpreters of their own)")
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # (to remove the socket below)
    sys.stdout.flush()
    sys.stderr.flush()
    server.settimeout(1.0)
    try:
        while os.getppid() == parent:  # while its run lives (a run killed without stopping it ends it)
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            if os.fork() == 0:
                server.close()
                try:
                    supervise(conn)
                finally:
                    os._exit(0)
            conn.close()
    finally:  # no stale socket, nor its private directory, is left behind
        os.unlink(path)
        os.rmdir(os.path.dirname(path))


def supervise(conn: socket.socket) -> None:
    """Fork the job's worker, tell the client its pid, and report its exit status; terminate it if
    the client goes away."""
    import select

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this process waits for its worker
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    conn.settimeout(None)
    request, fds = recv(conn, nfds=STDIO)
    if request is None or len(fds) != STDIO:
        return
    if request["interpreter"] != interpreter():
        send(conn, {"declined": f"the job runs {request['interpreter']['executable']}"})
        return
    if import_time_env(request["env"]) != import_time_env(os.environ):
        send(conn, {"declined": "the job's import-time settings differ from the server's"})
        return
    setproctitle("r1flow forkserver: supervising " + " ".join(request["argv"][:2]))
    pid = os.fork()
    if pid == 0:
        conn.close()
        work(request, fds)  # never returns
    for fd in fds:
        os.close(fd)
    send(conn, {"pid": pid})
    pidfd = os.pidfd_open(pid)
    client_gone = False
    while True:
        ready, _, _ = select.select([pidfd] if client_gone else [pidfd, conn], [], [])
        if pidfd in ready:
            break
        if not conn.recv(1):  # the client died without passing a signal on: end the job
            client_gone = True
            os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    if not client_gone:
        send(conn, {"status": os.waitstatus_to_exitcode(status)})


def import_time_env(env: dict) -> dict:
    """The variables of ``env`` that the server's imports have already read (``IMPORT_TIME_ENV``)."""
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV)}


def become(request: dict, fds: list[int]) -> None:
    """This process becomes what ``python *argv`` would have been at its start: the job's signals,
    streams, directory, environment, import path and random seeds."""
    import random
    import tempfile

    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # found again from the job's TMPDIR (Snakemake sets it per job)
    sys.path[:] = request["path"]
    # the streams as an interpreter opens them: stdout line-buffered on a terminal, else in blocks
    # (unbuffered under PYTHONUNBUFFERED); stderr line-buffered
    sys.stdin = sys.__stdin__ = open(0, closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)
    if os.environ.get("PYTHONUNBUFFERED"):
        sys.stdout.reconfigure(write_through=True)
    random.seed()  # a new interpreter seeds these from the OS; a fork would repeat the server's
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def work(request: dict, fds: list[int]) -> None:
    """The job: run ``python *argv`` in this process, as it would have run in its own, and exit."""
    import atexit
    import runpy
    import threading
    import traceback

    become(request, fds)
    argv = request["argv"]
    setproctitle(" ".join(["python", *argv]))  # what ps, top and pgrep -f show: the job's own command
    status = 0
    try:
        if len(argv) < 2 or argv[0] != "-m":
            raise SystemExit(f"r1flow forkserver runs modules: -m NAME [ARGS], not {argv}")
        sys.argv = [argv[1], *argv[2:]]  # runpy sets argv[0] to the module's file, as `python -m` does
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            status = (e.code or 0) & 0xFF  # as an interpreter exits: sys.exit(-1) is status 255
        else:
            print(e.code, file=sys.stderr)
            status = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        status = -signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        status = 1
    # an interpreter's shutdown: its threads joined, then its exit handlers, then its streams flushed
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    end_by_signal(status)  # ended by Ctrl-C: end by SIGINT, as an interpreter does
    os._exit(status)


def main() -> None:
    if sys.argv[1:2] == ["serve"] and len(sys.argv) == 3:
        serve(sys.argv[2])
    elif sys.argv[1:2] == ["-m"] and len(sys.argv) >= 3:
        exit_as(client(sys.argv[1:]))
    else:
        raise SystemExit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()
