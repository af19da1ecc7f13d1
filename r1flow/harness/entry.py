"""What every stage does around its own work: compose, validate, resolve its edges, track, run,
mark done.

A stage module is thin::

    @stage_main("cold_start_sft")
    def main(ctx: StageContext) -> dict:
        ...  # build, fit, export, record
        return {"summary": ...}

``stage_main`` composes conf/config.yaml with Hydra (so ``--help``, ``--cfg job`` and ``-m`` sweeps
work), validates it before any compute, finds the stage's node in the stage table (r1flow/dag.py)
— its starting model, its upstream outputs, its output directory — unless Snakemake passed them,
checks that the MLflow server answers, opens the stage's MLflow run (tags, config, upstream
lineage), and runs the stage in an attempt directory (r1flow/harness/outputs.py). Only when it has
succeeded are its outputs moved into the output directory and ``done.json`` written, last: a failed
or killed stage never leaves half-written outputs nor a completion file, and (outside Snakemake,
which manages its rules' outputs itself) it leaves the previous good outputs in place.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import tracking
from r1flow.config import CONF_DIR, digest, plain, validate, with_student
from r1flow.config.knobs import Part
from r1flow.dag import BY_NAME, DAG, DATA, LIGHT, Node, shard_name
from r1flow.harness.checkpoints import interrupted_run
from r1flow.harness.code import code_digest
from r1flow.harness.files import DataError, write_json
from r1flow.harness.model_source import check_model_source
from r1flow.harness.outputs import ATTEMPT, attempt_dir, publish

log = logging.getLogger("r1flow")
DONE = "done.json"


@dataclass
class StageContext:
    """What a stage's work is given: its config, node and directories, and its MLflow run."""

    cfg: DictConfig
    stage: str
    out_dir: Path  # where the stage writes: its attempt directory, published into io.out_dir on success
    run: tracking.StageRun
    config_digest: str
    init: str | None = None  # the model it starts from (an evaluation: the model it evaluates)
    upstream: dict[str, Path] = field(default_factory=dict)  # upstream stage -> its output directory
    data: dict[str, Path] = field(default_factory=dict)  # the data files it reads: name -> path (DAG.data_files)
    label: str | None = None  # an evaluation: the checkpoint's label
    home: Path | None = None  # the stage's directory in the DAG (a curation stage's parts share it)

    @property
    def model_name(self) -> str:
        """Name of the model this stage logs: ``<experiment>-<stage>[-<student>]``."""
        return f"{self.cfg.name}-{self.stage}" + (f"-{self.cfg.student}" if self.cfg.student else "")

    def data_file(self, name: str) -> Path:
        """Data file ``name`` (``train``: ``<io.data_dir>/train.jsonl``), one of those the stage table
        says this stage reads: its rule depends on exactly these, so reading another is a bug."""
        if name not in self.data:
            raise KeyError(f"{self.stage} reads data file {name!r}, which DAG.data_files (r1flow/dag.py) does not "
                           f"list for it ({', '.join(self.data) or 'none'}): its rule would not rerun when it changes")
        return self.data[name]

    def reads(self, stage: str) -> Path:
        """The output directory of upstream stage ``stage``."""
        if stage not in self.upstream:
            raise ValueError(f"config error: io.upstream: {self.stage} reads {stage}'s outputs; "
                             f"io.upstream has {', '.join(self.upstream) or 'nothing'}")
        return self.upstream[stage]


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


class _NonZeroRankRun:
    """What a stage records on DDP ranks other than 0: nothing (rank 0 holds the MLflow run)."""

    run_id = None

    def lightning_logger(self, prefix: str = ""):
        return False

    def __getattr__(self, name: str):  # log_metrics, log_dataset, log_hf_model, ...: no-ops
        return lambda *args, **kwargs: None


def _rank() -> int:
    """This process's global rank when Lightning (or torchrun/SLURM) launched several."""
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _sweep_trial() -> list[str] | None:
    """The overrides of this trial when running under ``-m`` (a Hydra multirun), else None."""
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return list(hc.overrides.task) if hc.mode == RunMode.MULTIRUN else None


def seed(cfg: DictConfig, uses_torch: bool) -> None:
    """Seed the generators from ``cfg.seed``: Python's and NumPy's, and for a job that computes with
    torch (``uses_torch``) torch's too, through Lightning (which also seeds its dataloader workers),
    with ``trainer.num_threads``. A light job (data, report, a curation's shards and merge) imports
    neither torch nor Lightning: 4 to 6 s of its start-up (bench/job_startup.py;
    tests/test_workflow.py checks that none of them imports either)."""
    if not uses_torch:
        import numpy as np

        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        return
    import lightning as L
    import torch

    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)


def find_node(dag: DAG, stage: str, cfg: DictConfig) -> Node:
    """This run's node: the stage's (the student's), or an evaluation named by ``io.label`` (by
    default the checkpoint's directory name), of the DAG's checkpoint or of ``io.init_model``."""
    if stage != "evaluate":
        return dag.node(stage, cfg.student)
    label = cfg.io.label or (Path(cfg.io.init_model).parent.name if cfg.io.init_model else None)
    if label in dag.evaluations:
        return dag.evaluations[label]
    if not cfg.io.init_model:
        raise ValueError(f"config error: io.label: {label!r} is no checkpoint of this DAG "
                         f"({', '.join(dag.evaluations)}); name one, or give io.init_model")
    return Node(f"eval/{label}", BY_NAME["evaluate"], label=label, upstream=(DATA,))


def resolve_io(dag: DAG, node: Node, cfg: DictConfig) -> tuple[str | None, dict[str, Path], list[str]]:
    """(starting model, upstream stage -> dir, lineage dirs): Snakemake's values, else the table's.
    By hand, lineage keeps the upstream dirs that hold a finished run."""
    init = cfg.io.init_model or dag.init_model(node)
    if cfg.io.upstream:
        upstream = {k: Path(v) for k, v in cfg.io.upstream.items()}
        return init, upstream, [str(d) for d in upstream.values()]
    upstream = {k: Path(v) for k, v in dag.upstream(node).items()}
    if DATA in upstream:
        upstream[DATA] = Path(cfg.io.data_dir)
    return init, upstream, [str(d) for d in upstream.values() if (d / "run.json").is_file()]


def run_stage(stage: str, cfg: DictConfig, fn: Callable[[StageContext], dict | None], code_module: str) -> dict:
    """Run ``fn`` as stage ``stage`` under ``cfg``; return what it returned (also in done.json)."""
    _quiet_libraries()
    cfg = with_student(cfg)
    validate(cfg)
    dag = DAG(cfg)
    node = find_node(dag, stage, cfg)
    init, upstream, lineage = resolve_io(dag, node, cfg)
    trial = _sweep_trial()
    if cfg.io.out_dir:
        out_dir = Path(cfg.io.out_dir)
    elif trial is not None:  # each sweep trial writes into its own Hydra sweep directory
        out_dir = Path(HydraConfig.get().runtime.output_dir)
    else:  # the DAG's (a curation stage's part: the part's, as its Snakemake job)
        out_dir = Path(dag.dir(node.key, cfg.io.part, shard_name(cfg.io.shard) if cfg.io.shard else None))
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / ATTEMPT  # what the stage writes into (the ranks > 0 too)
    seed(cfg, uses_torch=node.stage.job_class(cfg.io.part) != LIGHT)
    view = dag.view(node)
    ctx = StageContext(cfg=cfg, stage=stage, out_dir=work, run=_NonZeroRankRun(), config_digest=digest(view),
                       init=init, upstream=upstream, label=node.label, home=Path(dag.dir(node.key)),
                       data={k: Path(v) for k, v in dag.data_files(node, cfg.io.part).items()})
    if _rank() > 0:  # a DDP rank launched by Lightning: train, but record and mark done on rank 0 only
        fn(ctx)
        return {}
    if init and cfg.io.part not in (Part.shards, Part.merge):  # (a curation's prompt split and merge load none)
        check_model_source(init)  # a missing model fails here, before any compute
    tracking.check_tracking_server()
    attempt_dir(out_dir)  # (an earlier attempt's checkpoints stay: they may be resumed from)
    t0 = time.time()
    with tracking.stage_run(
        stage=stage, experiment=cfg.name, config=plain(cfg), config_digest=ctx.config_digest,
        code_digest=code_digest(code_module), upstream_dirs=lineage, out_dir=str(out_dir), work_dir=str(work),
        run_name=f"{stage}[{','.join(trial)}]" if trial else (cfg.io.label and f"{stage}:{cfg.io.label}")
        or (cfg.student and f"{stage}:student-{cfg.student}"),
        param_sections=[k.split(".")[0] for k in view if k not in ("name", "seed")],
        resume_run_id=interrupted_run(work, ctx.config_digest),  # its curves go on in the same run
    ) as run:
        ctx.run = run
        if init and node.init is None and init in {dag.external(s) for s in (None, *cfg.students)}:  # an external base
            run.log_input_model(run.register_external_base(init))
        summary = fn(ctx) or {}
        peak_mb = peak_rss_mb()
        run.log_metrics({"stage/wall_s": time.time() - t0, "stage/peak_rss_mb": peak_mb})
    summary = {"stage": stage, "run_id": run.run_id, "wall_s": round(time.time() - t0, 2), "peak_rss_mb": peak_mb,
               **summary}
    (out_dir / DONE).unlink(missing_ok=True)
    publish(work, out_dir)
    write_json(out_dir / DONE, summary)
    log.info("%s done in %.1f s -> %s", stage, summary["wall_s"], out_dir)
    return summary


def peak_rss_mb() -> float:
    """The stage's peak resident memory in MB: its process's, or a finished child's (a rank, an
    engine) if larger. The stage records it itself (done.json, MLflow's ``stage/peak_rss_mb``):
    Snakemake's benchmark files measure a job's process tree, which holds only the job's client when
    the job runs in the fork server (r1flow/harness/forkserver.py)."""
    import resource

    kb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return round(kb / 1024, 1)  # Linux counts kilobytes


def stage_main(stage: str) -> Callable:
    """Decorator turning ``fn(ctx)`` into a Hydra entry point ``python -m stages.<stage>``."""

    def decorate(fn: Callable[[StageContext], dict | None]) -> Callable[[], None]:
        code_module = fn.__module__ if fn.__module__ != "__main__" else f"stages.{stage}"

        @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
        def main(cfg: DictConfig) -> float | None:
            try:
                # the returned objective (if the stage reports one) is what an Optuna sweep maximises
                return run_stage(stage, cfg, fn, code_module).get("objective")
            except (ValueError, FileNotFoundError, DataError, tracking.TrackingError) as e:
                if type(e) is ValueError and not str(e).startswith("config error"):
                    raise  # a bug, not bad input: keep the traceback
                log.error("%s failed: %s", stage, e)
                print(f"error: {stage}: {e}", file=sys.stderr)
                sys.exit(1)

        return main

    return decorate
