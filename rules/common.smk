# What every rule shares: the experiment's jobs (r1flow/harness/jobs.py, from the stage table), the
# stage command, the pipeline's MLflow run, and the targets.

import os
import sys

sys.path.insert(0, workflow.basedir)  # this checkout's code, even when another copy is installed

import tracking
from r1flow.harness.jobs import Jobs

EXPERIMENT = config.get("experiment", "tiny")
# Threads per job (torch's intra-op threads): the tiny world's models are too small to use two cores
# well (bench/job_threads.py), so by default each job takes one core and Snakemake runs independent
# jobs side by side. On a big machine or a cluster: --config job_threads=16.
J = Jobs(EXPERIMENT, job_threads=int(config.get("job_threads", 1)), cores=workflow.cores)
# Every stage job: its command (the experiment, its paths and edges), its threads, its log.
STAGE = "{params.cmd} trainer.num_threads={threads} > {log} 2>&1"
ENV = "../envs/r1flow.yaml"


onstart:
    os.environ[tracking.PIPELINE_RUN_ENV] = tracking.start_pipeline_run(J.cfg.name)


onsuccess:
    if tracking.PIPELINE_RUN_ENV in os.environ:
        tracking.end_pipeline_run(os.environ[tracking.PIPELINE_RUN_ENV], "FINISHED")


onerror:
    if tracking.PIPELINE_RUN_ENV in os.environ:
        tracking.end_pipeline_run(os.environ[tracking.PIPELINE_RUN_ENV], "FAILED")


R = J.stage("data")
rule data:
    """Prompts of every split, cold-start and non-reasoning data; the tiny world's tokenizer and corpus."""
    input: unpack(R.input)
    output: **R.output
    params: **R.params
    log: R.log
    benchmark: R.benchmark
    threads: R.threads
    priority: R.priority
    resources: **R.resources
    conda: ENV
    shell: STAGE
