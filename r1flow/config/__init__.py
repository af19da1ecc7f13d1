"""The typed config tree (Hydra + OmegaConf structured configs) and what is computed from it.

The schema (``knobs``, ``base``, ``data``, ``training``, ``rl``, ``sampling``, ``root``) states
every default once, with its meaning; the YAML under conf/ holds only presets and experiments, the
values that differ. The YAML is merged onto the schema, so a misspelt key or a wrong type fails at
composition, before any compute, with OmegaConf's message naming the key. Nothing here imports
training code: validating a config is cheap and changes no stage's code digest.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from r1flow.config.base import ModelConfig, TrainerConfig
from r1flow.config.checks import ConfigError, student_checkpoint, validate
from r1flow.config.data import DataConfig
from r1flow.config.root import RootConfig

__all__ = ["CONF_DIR", "ConfigError", "compose", "config_view", "digest", "plain", "student_checkpoint", "validate",
           "with_student"]

CONF_DIR = Path(__file__).resolve().parent.parent.parent / "conf"


def register_configs() -> None:
    """The schema nodes conf/ composes onto: the root, and the presets' groups."""
    cs = ConfigStore.instance()
    cs.store(name="r1flow_schema", node=RootConfig)
    for group, node in (("model", ModelConfig), ("data", DataConfig), ("trainer", TrainerConfig)):
        cs.store(group=group, name=f"{group}_schema", node=node)


def seed_suffix(seed: Any) -> str:
    """What a run's seed adds to its results directory: nothing for seed 0, '-seed<N>' otherwise
    (results/tiny, results/tiny-seed1), so that runs of one experiment under two seeds sit side by side."""
    return "" if int(seed) == 0 else f"-seed{int(seed)}"


register_configs()
OmegaConf.register_new_resolver("r1flow.seed_suffix", seed_suffix, replace=True)


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose conf/config.yaml with Hydra's compose API (the Snakefile, tests, benchmarks)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides or []))


def plain(value: Any) -> Any:
    """A config node as plain Python (interpolations resolved, enums as their strings)."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True, enum_to_str=True)
    return value.value if isinstance(value, Enum) else value


def with_student(cfg: DictConfig, student: str | None = None) -> DictConfig:
    """``cfg`` with its model replaced by student ``student`` (default: ``cfg.student``): the
    teacher's model section merged with ``students[student]``, whose ``pretrain`` key (if any) is
    merged into the pretrain section instead. Unchanged when no student is set."""
    name = student or cfg.student
    if not name:
        return cfg
    if name not in cfg.students:
        raise ValueError(f"config error: student: {name!r} is not one of students ({', '.join(cfg.students) or 'none'})")
    overrides = OmegaConf.to_container(cfg.students[name])
    pretrain = overrides.pop("pretrain", {})
    out = cfg.copy()
    with open_dict(out):
        out.model = OmegaConf.merge(cfg.model, overrides)
        out.pretrain = OmegaConf.merge(cfg.pretrain, pretrain)
        out.model.name = f"{cfg.model.name}-{name}"
        if student_checkpoint(cfg, name):
            out.model.init = "pretrained"
        out.student = name
    return out


def config_view(cfg: DictConfig, sections: tuple[str, ...]) -> dict:
    """The resolved config ``sections`` (top-level keys or dotted paths) a stage's outputs depend
    on, plus the experiment's name and seed (and the student's name)."""
    view: dict[str, Any] = {"name": cfg.name, "seed": cfg.seed}
    if cfg.student:
        view["student"] = cfg.student
    for key in sections:
        view[key] = plain(OmegaConf.select(cfg, key))
    return view


def digest(obj: Any) -> str:
    """sha256 of a JSON rendering (keys sorted): the config digest of a view."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
