"""What the Snakefile needs from the project: resolved per-stage configs and code digests.

Snakemake tracks files and params, not the YAML under conf/ nor the Python a shell command runs.
So at parse time the Snakefile resolves the Hydra config once and writes, for every stage, the
config sections its outputs depend on to ``results/<name>/config/<stage>.yaml`` — rewritten only
when its content changes — and gives each rule that file as an input and the digest of the code it
runs as a param. A real edit of a stage's config or code reruns that stage and its descendants;
nothing else moves.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig

from r1flow.config import STAGE_SECTIONS, STUDENT_STAGES, compose, stage_view, validate, with_student
from r1flow.datafiles import code_digest


def resolve_experiment(experiment: str, root: str | Path = ".") -> tuple[DictConfig, dict[str, str]]:
    """Compose ``experiment``, validate it, and write each stage's config view if it changed.

    Returns the composed config and ``{stage: path of its view}``; a student's stages are keyed
    ``<stage>@<student>`` (their model section is the student's).
    """
    cfg = compose([f"experiment={experiment}"])
    validate(cfg)
    out = Path(root) / cfg.results_dir / "config"
    out.mkdir(parents=True, exist_ok=True)
    views = {stage: stage_view(cfg, stage) for stage in STAGE_SECTIONS}
    for student in cfg.students:
        scfg = with_student(cfg, student)
        validate(scfg)
        views.update({f"{stage}@{student}": stage_view(scfg, stage) for stage in STUDENT_STAGES})
    paths = {}
    for key, view in views.items():
        path = out / f"{key}.yaml"
        text = yaml.safe_dump(view, sort_keys=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        paths[key] = str(path)
    return cfg, paths


def stage_code(stage_module: str) -> str:
    return code_digest(stage_module)
