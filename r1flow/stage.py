"""What every stage does around its own work: compose → validate → track → run → mark done.

A stage module is thin::

    @stage_main("cold_start_sft")
    def main(ctx: StageContext) -> dict:
        ...  # build, fit, export, record
        return {"summary": ...}

``stage_main`` composes conf/config.yaml with Hydra (so ``--help``, ``--cfg job`` and ``-m``
sweeps work), validates it before any compute, checks that the MLflow server answers, opens the
stage's MLflow run (tags, config, upstream lineage), runs the stage, and writes ``done.json`` in
the stage's output directory last — a crashed stage never leaves a completion file behind.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import tracking
from r1flow.config import CONF_DIR, STUDENT_STAGES, digest, stage_view, validate, with_student
from r1flow.datafiles import DataError, code_digest, write_json

log = logging.getLogger("r1flow")
DONE = "done.json"


@dataclass
class StageContext:
    cfg: DictConfig
    stage: str
    out_dir: Path
    run: tracking.StageRun
    config_digest: str

    @property
    def model_name(self) -> str:
        """Name of the model this stage logs: ``<experiment>-<stage>[-<student>]``."""
        return f"{self.cfg.name}-{self.stage}" + (f"-{self.cfg.student}" if self.cfg.student else "")


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


def student_prefix(cfg: DictConfig) -> str:
    """Where a student's stages write under the results dir: ``students/<name>/`` (else nothing)."""
    return f"students/{cfg.student}/" if cfg.student else ""


def stage_output(cfg: DictConfig, stage: str) -> str:
    """The DAG's output dir of ``stage`` (the student's own for a stage a student runs)."""
    return f"{cfg.results_dir}/{student_prefix(cfg) if stage in STUDENT_STAGES else ''}{stage}"


def base_model(ctx: StageContext) -> str:
    """The base model a stage starts from: ``io.init_model``, else the pretrain stage's export (tiny
    world; the student's own for a student) or ``model.name_or_path``; an external base is logged as
    the run's input model."""
    cfg = ctx.cfg
    init = cfg.io.init_model or (
        cfg.model.name_or_path if cfg.model.init == "pretrained"
        else f"{stage_output(cfg, 'pretrain')}/model")
    if cfg.model.init == "pretrained" and init == cfg.model.name_or_path:
        ctx.run.log_input_model(ctx.run.register_external_base(init))
    return init


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


def _upstream_dirs(cfg: DictConfig, names: tuple[str, ...]) -> list[str]:
    """Explicit ``io.upstream`` (Snakemake passes it), else the DAG's upstream stage dirs that exist."""
    if cfg.io.upstream:
        return list(cfg.io.upstream)
    dirs = [cfg.io.data_dir if n == "data" else stage_output(cfg, n) for n in names]
    return [d for d in dirs if (Path(d) / "run.json").is_file()]


def run_stage(stage: str, cfg: DictConfig, fn: Callable[[StageContext], dict | None], code_module: str,
              upstream: tuple[str, ...] = ()) -> dict:
    """Run ``fn`` as stage ``stage`` under ``cfg``; return what it returned (also in done.json)."""
    _quiet_libraries()
    cfg = with_student(cfg)
    validate(cfg)
    trial = _sweep_trial()
    if cfg.io.out_dir:
        out_dir = Path(cfg.io.out_dir)
    elif trial is not None:  # each sweep trial writes into its own Hydra sweep directory
        out_dir = Path(HydraConfig.get().runtime.output_dir)
    else:
        out_dir = Path(stage_output(cfg, stage))
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    view = stage_view(cfg, stage)
    view_digest = digest(view)
    if _rank() > 0:  # a DDP rank launched by Lightning: train, but record and mark done on rank 0 only
        fn(StageContext(cfg=cfg, stage=stage, out_dir=out_dir, run=_NonZeroRankRun(), config_digest=view_digest))
        return {}
    (out_dir / DONE).unlink(missing_ok=True)
    tracking.check_tracking_server()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    t0 = time.time()
    with tracking.stage_run(
        stage=stage,
        experiment=cfg.name,
        config=resolved,
        config_digest=view_digest,
        code_digest=code_digest(code_module),
        upstream_dirs=_upstream_dirs(cfg, upstream),
        out_dir=str(out_dir),
        run_name=f"{stage}[{','.join(trial)}]" if trial else (cfg.io.label and f"{stage}:{cfg.io.label}")
        or (cfg.student and f"{stage}:student-{cfg.student}"),
        param_sections=[k.split(".")[0] for k in view if k not in ("name", "seed")],
    ) as run:
        ctx = StageContext(cfg=cfg, stage=stage, out_dir=out_dir, run=run, config_digest=view_digest)
        summary = fn(ctx) or {}
        run.log_metrics({"stage/wall_s": time.time() - t0})
    summary = {"stage": stage, "run_id": run.run_id, "wall_s": round(time.time() - t0, 2), **summary}
    write_json(out_dir / DONE, summary)
    log.info("%s done in %.1f s -> %s", stage, summary["wall_s"], out_dir)
    return summary


def stage_main(stage: str, upstream: tuple[str, ...] = ()) -> Callable:
    """Decorator turning ``fn(ctx)`` into a Hydra entry point ``python -m stages.<stage>``.

    ``upstream``: the DAG stages this one reads, for lineage when it runs outside Snakemake.
    """

    def decorate(fn: Callable[[StageContext], dict | None]) -> Callable[[], None]:
        code_module = fn.__module__ if fn.__module__ != "__main__" else f"stages.{stage}"

        @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
        def main(cfg: DictConfig) -> float | None:
            try:
                # the returned objective (if the stage reports one) is what an Optuna sweep maximises
                return run_stage(stage, cfg, fn, code_module, upstream).get("objective")
            except (ValueError, FileNotFoundError, DataError, tracking.TrackingError) as e:
                if type(e) is ValueError and not str(e).startswith("config error"):
                    raise  # a bug, not bad input: keep the traceback
                log.error("%s failed: %s", stage, e)
                print(f"error: {stage}: {e}", file=sys.stderr)
                sys.exit(1)

        return main

    return decorate
