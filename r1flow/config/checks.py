"""Checks beyond types, before any compute: each failure names the key and what is allowed.

Types, unknown keys and the choices of enum fields are checked by OmegaConf at composition, except
the keys that a ``+`` override adds (Hydra adds them past the schema): ``schema_keys`` rejects those. The
edges a knob chooses (``general_sft.start_from``, ...) by the stage table (r1flow/dag.py); reward
names by the reward registry when a GRPO stage starts or the Snakefile is read.
"""

from __future__ import annotations

import dataclasses
import difflib

from omegaconf import DictConfig, OmegaConf

from r1flow.config.base import ModelConfig, explicit_devices
from r1flow.config.rl import GRPOConfig
from r1flow.config.sampling import CurationConfig
from r1flow.config.training import MixedSFTConfig, PretrainConfig, SupervisedConfig

SPLITS = ("heldout", "hard", "validation", "train", "general", "safety")
GENERAL_SPLITS = ("general", "safety")


class ConfigError(ValueError):
    """A config value that cannot run, with the key in the message."""

    def __init__(self, key: str, why: str):
        super().__init__(f"config error: {key}: {why}")


def sections_of(cfg: DictConfig, schema: type) -> list[str]:
    """The top-level sections whose schema is ``schema`` (or a subclass)."""
    return [k for k in cfg if isinstance(cfg[k], DictConfig) and issubclass(OmegaConf.get_type(cfg[k]) or dict, schema)]


def schema_keys(node: DictConfig, path: str = "") -> None:
    """Every key of a typed section is a field of its schema. A ``+key=value`` override adds keys
    past the schema (Hydra's append), so a misspelt ``+cold_start_sft.lrr=1e-4`` would otherwise
    train with the default; the schema's free-form dicts (``rewards``, ``students``, ...) take any key."""
    schema = OmegaConf.get_type(node)
    fields = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    for key, value in node.items_ex(resolve=False):
        where = f"{path}.{key}" if path else str(key)
        if fields is not None and key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1)
            raise ConfigError(where, f"not a key of {schema.__name__}" + (f" (did you mean {near[0]}?)" if near else "")
                              + f"; its keys: {', '.join(sorted(fields))}")
        if isinstance(value, DictConfig) and node[key] is not None:  # (an optional section left empty)
            schema_keys(value, where)


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first value that cannot run."""
    schema_keys(cfg)
    _model(cfg.model, "model")
    _data(cfg)
    _evaluation(cfg)
    for name in sections_of(cfg, GRPOConfig):
        validate_grpo(cfg[name], name)
        if cfg[name].eval_every and not cfg.data.validation_permille:
            raise ConfigError(f"{name}.eval_every", "in-training checks read the validation split, and "
                              "data.validation_permille=0 makes none: give it a share, or set eval_every: 0")
    for name in sections_of(cfg, CurationConfig):
        if min(cfg[name].n, cfg[name].max_per_prompt, cfg[name].shard_size) < 1:
            raise ConfigError(name, "n, max_per_prompt and shard_size must be >= 1")
    for name in sections_of(cfg, MixedSFTConfig):
        if not 0 <= cfg[name].general_frac < 1:
            raise ConfigError(f"{name}.general_frac", "must be in [0, 1)")
    for name in sections_of(cfg, SupervisedConfig) + sections_of(cfg, PretrainConfig):
        if cfg[name].batch_size < 1:
            raise ConfigError(f"{name}.batch_size", "must be >= 1")
        if not 0 < cfg[name].optim.lr < 1:
            raise ConfigError(f"{name}.optim.lr", f"must be in (0, 1), got {cfg[name].optim.lr}")
    _students(cfg)
    _processes(cfg)


TRAINING_CLASSES = ("train", "rl")  # job classes whose stages run Lightning's Trainer


def ranks_per_node(cfg: DictConfig, job_class: str) -> int:
    """Processes a job of ``job_class`` runs on each node: one per device for the Lightning jobs
    (Lightning's SLURM environment expects SLURM_NTASKS = devices x num_nodes), else one."""
    if job_class not in TRAINING_CLASSES:
        return 1
    devices = explicit_devices(cfg.trainer.devices)
    if devices is not None:
        return devices
    return max(1, cfg.resources[job_class].gpus) if cfg.trainer.accelerator in ("gpu", "cuda") else 1


def _processes(cfg: DictConfig) -> None:
    """Multi-process runs: a global batch splits evenly over the ranks, and a cluster job gives each
    rank its device."""
    nodes = cfg.trainer.num_nodes
    ranks = ranks_per_node(cfg, "train") * nodes
    gpu = cfg.trainer.accelerator in ("gpu", "cuda")
    for name in sections_of(cfg, GRPOConfig) + sections_of(cfg, CurationConfig) + ["evaluate"]:
        if cfg[name].rollout.vllm_sleep and not gpu:
            raise ConfigError(f"{name}.rollout.vllm_sleep", "vLLM's sleep mode needs GPUs (trainer.accelerator=gpu)")
    if str(cfg.trainer.strategy).startswith("fsdp") and cfg.trainer.strategy != "fsdp2" and not gpu:
        raise ConfigError("trainer.strategy", "Lightning's FSDP strategy (FSDP1) needs GPUs (on CPU it raises \"The "
                          "strategy 'fsdp' requires a GPU accelerator\"); fsdp2 or ddp run here")
    if cfg.trainer.strategy == "fsdp2":
        for name in sections_of(cfg, GRPOConfig):
            if cfg[name].rollout.backend == "vllm":
                raise ConfigError(f"{name}.rollout.backend", "vLLM's weight push from an FSDP2-sharded policy is not "
                                  "implemented: use trainer.strategy=ddp with vLLM rollouts, or the hf backend")
    for job_class in TRAINING_CLASSES:
        gpus = cfg.resources[job_class].gpus
        if gpu and gpus and ranks_per_node(cfg, job_class) != gpus:
            raise ConfigError(f"resources.{job_class}.gpus", f"{gpus} GPUs per node for trainer.devices="
                              f"{cfg.trainer.devices}: a {job_class} job runs one process per device")
    if ranks == 1:
        return
    for name in sections_of(cfg, SupervisedConfig) + sections_of(cfg, PretrainConfig):
        if cfg[name].batch_size % ranks:
            raise ConfigError(f"{name}.batch_size", f"{cfg[name].batch_size} rows do not split over {ranks} "
                              "processes (trainer.devices x trainer.num_nodes); the batch size is global")
    for name in sections_of(cfg, GRPOConfig):
        g = cfg[name]
        if g.async_rollout:
            raise ConfigError(f"{name}.async_rollout", f"the asynchronous sampler serves one process, not {ranks} "
                              "(trainer.devices x trainer.num_nodes)")
        if (g.generation_batch_size // g.group_size) % ranks or g.mini_batch_size % ranks:
            raise ConfigError(name, f"the prompts of a rollout ({g.generation_batch_size // g.group_size}) and "
                              f"mini_batch_size ({g.mini_batch_size}) must split over {ranks} processes")


def _model(model: DictConfig, key: str) -> None:
    if model.init == "pretrained" and not model.name_or_path:
        raise ConfigError(f"{key}.name_or_path", "required when model.init=pretrained")
    if model.hidden_size % model.num_heads or model.num_heads % model.num_kv_heads:
        raise ConfigError(key, "hidden_size must divide by num_heads and num_heads by num_kv_heads")


def _data(cfg: DictConfig) -> None:
    data = cfg.data
    if data.source == "reasoning_gym" and not data.families:
        raise ConfigError("data.families", "at least one reasoning-gym family is required (data.source=reasoning_gym)")
    if data.source == "files":
        if data.files is None:
            raise ConfigError("data.files", "a table of problems is required with data.source=files "
                              "(presets: data=gsm8k, data=math)")
        if cfg.model.init == "scratch":
            raise ConfigError("data.source", "files need a pretrained base model (model.init=pretrained, "
                              "model.name_or_path=...): the embedded pretraining corpus is the arithmetic world's")
    if not (data.general_families or data.general_files.sft):
        raise ConfigError("data.general_files", "the general phase (general_sft, the reward models, all-scenario RL) "
                          "reads non-reasoning data: set data.general_files (sft, helpfulness, harmlessness, safety) "
                          "or data.general_families")
    for key, value in data.items():  # the world's shares (hurried_frac, check_frac, pretrain_*_frac, ...)
        if key.endswith("_frac") and not 0 <= value <= 1:
            raise ConfigError(f"data.{key}", f"a share: must be in [0, 1], got {value}")
    for key in ("pretrain_fact_max_a", "pretrain_fact_max_b"):
        if not 0 <= data[key] <= data.max_abs:
            raise ConfigError(f"data.{key}", f"must be in [0, data.max_abs = {data.max_abs}], got {data[key]}")
    if not 0 < data.heldout_permille < 1000 or not 0 <= data.validation_permille < 1000 - data.heldout_permille:
        raise ConfigError("data.heldout_permille", "held-out and validation shares must leave room for training "
                          f"(heldout {data.heldout_permille}, validation {data.validation_permille} per mille)")


def _evaluation(cfg: DictConfig) -> None:
    if cfg.evaluate.k < 1:
        raise ConfigError("evaluate.k", "must be >= 1")
    general = cfg.data.general_families and not cfg.data.general_files.sft
    for key in ("splits", "general_splits"):
        for split in cfg.evaluate[key]:
            if split not in SPLITS:
                raise ConfigError(f"evaluate.{key}", f"unknown split {split!r} ({', '.join(SPLITS)})")
            if split in GENERAL_SPLITS and not general:
                raise ConfigError(f"evaluate.{key}", f"the {split!r} split needs the embedded world's general "
                                  "families (data.general_families): chat data from data.general_files has no "
                                  "verifiable answers; all-scenario RL's reward models judge it instead")
            if split == "hard" and cfg.data.source == "files" and cfg.data.hard_path is None:
                raise ConfigError(f"evaluate.{key}", "the 'hard' split needs data.hard_path (data.source=files)")
            if split == "validation" and (cfg.data.source != "files" or not cfg.data.validation_permille):
                raise ConfigError(f"evaluate.{key}", "the 'validation' split needs data.source=files and "
                                  "data.validation_permille > 0")


def student_checkpoint(cfg: DictConfig, student: str) -> str | None:
    """The checkpoint a student starts from (``students.<name>.name_or_path``), or None for a student
    built from scratch and pretrained by the DAG (a smaller model of the teacher's architecture)."""
    path = cfg.students[student].get("name_or_path")
    if path is None and cfg.model.init != "scratch":
        raise ConfigError(f"students.{student}", "the teacher is a checkpoint (model.init=pretrained), so the "
                          "data stage builds no tokenizer or corpus to pretrain a student on: give the student a "
                          "checkpoint, e.g. {name_or_path: Qwen/Qwen2.5-0.5B}")
    return None if path is None else str(path)


def _students(cfg: DictConfig) -> None:
    model_keys = set(ModelConfig.__dataclass_fields__)
    pretrain_keys = set(PretrainConfig.__dataclass_fields__)
    for name, overrides in cfg.students.items():
        unknown = set(overrides) - model_keys - {"pretrain"}
        if unknown:
            raise ConfigError(f"students.{name}", f"unknown model keys {sorted(unknown)} (a student overrides "
                              "model.*, and pretrain.* under its 'pretrain' key)")
        unknown = set(overrides.get("pretrain") or {}) - pretrain_keys
        if unknown:
            raise ConfigError(f"students.{name}.pretrain", f"unknown pretrain keys {sorted(unknown)}")
        _model(OmegaConf.merge(cfg.model, {k: v for k, v in overrides.items() if k != "pretrain"}), f"students.{name}")
        student_checkpoint(cfg, name)
    for name in cfg.rl_only_students:
        if name not in cfg.students:
            raise ConfigError("rl_only_students", f"{name!r} is not one of students ({', '.join(cfg.students) or 'none'})")


def validate_grpo(g: DictConfig, name: str) -> None:
    """GRPO's batch arithmetic, checked before any compute."""
    if g.group_size < 2:
        raise ConfigError(f"{name}.group_size", "GRPO needs at least 2 completions per prompt")
    if g.generation_batch_size % g.group_size:
        raise ConfigError(f"{name}.generation_batch_size",
                          f"{g.generation_batch_size} is not a multiple of group_size={g.group_size} "
                          "(a rollout holds whole groups of G completions per prompt)")
    if g.mini_batch_size % g.group_size or g.generation_batch_size % g.mini_batch_size:
        raise ConfigError(f"{name}.mini_batch_size",
                          f"{g.mini_batch_size} must be a multiple of group_size={g.group_size} and divide "
                          f"generation_batch_size={g.generation_batch_size}")
    if g.length_buckets < 1 or g.logprob_chunk_rows < 1:
        raise ConfigError(f"{name}.length_buckets/logprob_chunk_rows", "both must be >= 1")
    if g.mu < 1 or g.beta < 0 or g.temperature <= 0:
        raise ConfigError(f"{name}.mu/beta/temperature", "need mu >= 1, beta >= 0, temperature > 0")
    if not 0 <= g.general_prompt_frac <= 1 or g.general_last_steps < 0:
        raise ConfigError(f"{name}.general_prompt_frac",
                          "needs 0 <= general_prompt_frac <= 1 and general_last_steps >= 0")
    if g.async_rollout and (g.rollout.backend != "hf" or not g.rollout.hf_drop_finished or g.dynamic_sampling
                            or g.async_sampler_threads < 1):
        raise ConfigError(f"{name}.async_rollout", "the asynchronous sampler is the hf backend's decode loop "
                          "(rollout.backend=hf, rollout.hf_drop_finished=true), samples one rollout ahead "
                          "(dynamic_sampling=false) on async_sampler_threads >= 1")
    if g.general_prompt_frac > 0 and g.general_last_steps > 0 and not g.general_rewards:
        raise ConfigError(f"{name}.general_rewards", "general prompts need rewards of their own (e.g. format)")
