# Shared by all rules files: the experiment's jobs (r1flow/harness/jobs.py, from the stage table), the
# one helper that makes a rule of a job, the pipeline's MLflow run, and the data stage.

import os
import sys
import time

sys.path.insert(0, workflow.basedir)  # this checkout's code, even when another copy is installed

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from r1flow.harness.jobs import Jobs

# `--config` takes only the keys of rules/config.schema.yaml: a misspelt one (experimnt=smoke) would
# otherwise be ignored and start the default experiment
CONFIG_SCHEMA = os.path.join(workflow.basedir, "rules", "config.schema.yaml")
with open(CONFIG_SCHEMA) as f:
    CONFIG_KEYS = yaml.safe_load(f)["properties"]
if set(config) - set(CONFIG_KEYS):
    raise WorkflowError(
        f"--config: unknown key(s) {', '.join(sorted(set(config) - set(CONFIG_KEYS)))}. The keys are:\n"
        + "".join(f"  {k}: {v['description']}\n" for k, v in CONFIG_KEYS.items())
        + "Every hyperparameter is a Hydra override of a stage (docs/config.md).")
validate(config, CONFIG_SCHEMA)

EXPERIMENT = config.get("experiment", "tiny")
# Threads per job (torch's intra-op threads): the tiny world's models are too small to use two cores
# well (bench/job_threads.py), so by default each job takes one core and Snakemake runs independent
# jobs side by side. On a big machine or a cluster: --config job_threads=16.
J = Jobs(EXPERIMENT, job_threads=int(config.get("job_threads", 1)), cores=workflow.cores, seed=config.get("seed"))
# Every stage job runs `python` from this interpreter's directory, first on the jobs' PATH (not its
# path in the rules' params or commands: reaching the venv by another path changes no job), with its
# launcher (srun for a multi-process SLURM job), its command (the experiment, its paths and edges),
# its threads and its log. The command goes through the run's fork server when it has one (below):
# `python -m r1flow.harness.forkserver -m stages.NAME ...` is `python -m stages.NAME ...` without
# the ~7 s of imports; where no server answers, it is exactly that command.
envvars:
    "PATH",


JOB_PATH = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])
os.environ["PATH"] = JOB_PATH
STAGE = "{params.launcher}python -m r1flow.harness.forkserver {params.cmd} trainer.num_threads={threads} > {log} 2>&1"
ENV = "../envs/r1flow.yaml"


def job_rule(name, R, doc):
    """Rule ``name`` from job ``R`` (r1flow/harness/jobs.py): its inputs (its config view and the
    upstream stages' completion files), outputs, command, log, benchmark, threads, priority, cluster
    resources and wildcards, all derived from the stage table."""
    rule:
        name: name
        input: unpack(R.input)
        output: **R.output
        params: **R.params
        log: R.log
        benchmark: R.benchmark
        threads: R.threads
        priority: R.priority
        resources: **R.resources
        wildcard_constraints: **R.wildcards
        conda: ENV
        shell: STAGE
    workflow.get_rule(name).docstring = doc


def stage_rule(name, doc):
    """The rule of stage ``name`` (of the students, with ``{student}`` in its paths, for a stage only
    students run)."""
    job_rule(name, J.stage(name) if name in J.dag.nodes else J.student(name), doc)


STARTED = []  # when this invocation started running jobs
FORKSERVER = []  # this invocation's fork server, if it started one


# The hooks run in the main Snakemake process only (not in a cluster job's), so MLflow is imported
# there: every job's Snakemake on a cluster reads this file, and `import tracking` costs it 1.7 s.
onstart:
    import tracking

    STARTED.append(time.time())
    try:  # in seconds, before any job (MLflow's client would retry an unreachable server for minutes)
        tracking.check_tracking_server()
    except tracking.TrackingError as e:
        raise WorkflowError(f"{e}. Point MLFLOW_TRACKING_URI at a server that answers, or unset it to record "
                            "in ./mlflow.db; no job was started.") from None
    os.environ[tracking.PIPELINE_RUN_ENV] = tracking.start_pipeline_run(J.cfg.name)
    # Local jobs start in a fork of one process that has imported the libraries (r1flow/harness/
    # forkserver.py); jobs on a cluster's nodes, and runs with --config forkserver=False, start their own.
    if config.get("forkserver", True) and workflow.local_exec and "SLURM_JOB_ID" not in os.environ:
        from r1flow.harness import forkserver

        FORKSERVER.append(forkserver.Server(f"{J.res}/logs/forkserver.log"))
        os.environ[forkserver.ENV] = FORKSERVER[0].socket


onsuccess:
    import tracking

    if tracking.PIPELINE_RUN_ENV in os.environ:
        tracking.end_pipeline_run(os.environ[tracking.PIPELINE_RUN_ENV], "FINISHED")
    if STARTED:
        J.record_run(STARTED[0])
    for server in FORKSERVER:
        server.stop()


onerror:
    import tracking

    if tracking.PIPELINE_RUN_ENV in os.environ:
        tracking.end_pipeline_run(os.environ[tracking.PIPELINE_RUN_ENV], "FAILED")
    for server in FORKSERVER:
        server.stop()


stage_rule("data", "Prompts of every split, cold-start and non-reasoning data; the tiny world's tokenizer and corpus.")
