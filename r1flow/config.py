"""Typed schema of the Hydra config tree (conf/), and the per-stage views Snakemake tracks.

Every knob lives here once, with its meaning and, where the paper gives one, its value. The YAML
files under conf/ are merged onto these dataclasses, so a misspelt key or a wrong type fails at
composition — before any compute — with OmegaConf's message naming the key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@dataclass
class ModelConfig:
    """The policy model. ``init=scratch`` builds the architecture below (the pretrain stage of the
    embedded world); ``init=pretrained`` loads ``name_or_path`` (a hub id or a local directory)
    with ``from_pretrained`` and the pipeline skips pretraining."""

    name: str = "tiny"
    init: str = "scratch"  # scratch | pretrained
    name_or_path: str | None = None
    arch: str = "qwen2"  # qwen2 | llama (for init=scratch)
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 256
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0
    dtype: str = "auto"  # auto: float32 on CPU (bf16 matmul is ~50x slower there), bfloat16 on GPU
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False


@dataclass
class FamilyConfig:
    """One reasoning-gym family: its generator parameters for the train/held-out splits and for
    the harder held-out split that measures generalisation (e.g. more terms)."""

    name: str = MISSING
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)
    hard_params: dict[str, Any] = field(default_factory=dict)
    top_words: int = 0  # general families: keep items whose words are all among the K most frequent


@dataclass
class DataConfig:
    """Prompts, splits and the corpora of the embedded world."""

    families: list[FamilyConfig] = field(default_factory=list)
    heldout_permille: int = 150  # share of the expression space (by hash) that is held out
    max_abs: int = 99  # drop items whose solution leaves the tokenizer's integer range
    n_train: int = 4000  # RL / rejection-sampling prompts
    n_heldout: int = 1000  # evaluation prompts (tiny world: pass@1's 95% interval ~ +-2 points at 1,000)
    n_hard: int = 400
    n_cold_start: int = 2000  # R1: "thousands" of long-CoT cold-start examples
    # share of cold-start answers written tersely: the value alone, without the intermediate rewrites
    cold_start_terse_frac: float = 0.0
    # non-reasoning tasks (general SFT and all-scenario RL), answered directly without a CoT
    general_families: list[FamilyConfig] = field(default_factory=list)
    n_general_train: int = 2000
    n_general_heldout: int = 300
    # pretraining corpus of the embedded world (ignored with model.init=pretrained)
    pretrain_docs: int = 40000
    pretrain_fact_frac: float = 0.4  # "a op b = c" facts
    pretrain_worked_frac: float = 0.25  # worked examples in the chat format, tags and EOS included
    pretrain_general_frac: float = 0.0  # general tasks as plain text (question, then answer)
    pretrain_max_terms: int = 5
    pretrain_ops: str = "+-*"
    seed: int = 1234


@dataclass
class TrainerConfig:
    """Lightning Trainer settings (strategy/devices/precision are what GPU runs change)."""

    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"  # ddp | fsdp | deepspeed_stage_2 ... on clusters
    precision: str = "32-true"  # bf16-mixed on GPUs
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    num_threads: int = 0  # torch.set_num_threads; 0 leaves torch's default
    accumulate_grad_batches: int = 1


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay to ``lr * min_lr_ratio``."""

    lr: float = 5e-5  # R1 cold-start/general SFT: 5e-5 cosine-decayed to 5e-6
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0


@dataclass
class PretrainConfig:
    """Pretraining from scratch on the procedurally generated corpus (loss on every token)."""

    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-3, warmup_steps=100, weight_decay=0.01))
    max_steps: int = 1200
    batch_size: int = 16
    seq_len: int = 128
    val_every: int = 500
    val_batches: int = 20
    ckpt_every: int = 500


@dataclass
class SFTConfig:
    """Supervised fine-tuning with the loss on response tokens only (cold-start, general SFT and
    distillation all use it). ``max_steps`` bounds the run; ``epochs`` is the paper's knob."""

    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 2  # R1: 2-3 epochs
    max_steps: int = -1  # -1: as many as the epochs take
    batch_size: int = 16  # R1: 128
    max_length: int = 256
    val_fraction: float = 0.05
    val_every: int = 100  # steps between validation-loss checks
    ckpt_every: int = 200
    bucket_factor: int = 32  # length-bucketing: sort within windows of bucket_factor * batch_size rows


@dataclass
class GeneralSFTConfig(SFTConfig):
    """Stage 3b: SFT on the rejection-sampled reasoning data mixed with non-reasoning data,
    restarting from ``start_from`` (R1: the base model, not the reasoning-RL checkpoint)."""

    start_from: str = "base"  # base | a stage whose model/ to continue (e.g. reasoning_rl)
    general_frac: float = 0.25  # share of non-reasoning rows in the mix (R1: ~200k of ~800k)
    reasoning_data: str = "${results_dir}/rejection_sampling/reasoning_sft.jsonl"


@dataclass
class RewardModelConfig:
    """A reward model (R1_RECIPE.md §3): the ``start_from`` stage's LM with a scalar head, trained on
    ``prompt, chosen, rejected`` JSONL (point ``train_data``/``heldout_data`` at real preference
    data); ``pairwise`` (Bradley–Terry) or ``pointwise`` (chosen = safe, rejected = unsafe)."""

    mode: str = "pairwise"  # pairwise | pointwise
    target: str = "summary"  # what is scored: summary (after </think>) | response
    train_data: str = MISSING
    heldout_data: str = MISSING
    start_from: str = "general_sft"
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=6e-6, warmup_steps=0))  # R1: lr 6e-6
    epochs: int = 1  # R1: 1 epoch, batch 256
    max_steps: int = -1
    batch_size: int = 256
    max_length: int = 256
    val_every: int = 50
    ckpt_every: int = 200


@dataclass
class EvalConfig:
    """Sampling evaluation (R1_RECIPE.md §5): k samples per prompt at T=0.6, top-p 0.95."""

    k: int = 8
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 96
    seed: int = 0
    splits: list[str] = field(default_factory=lambda: ["heldout", "hard"])
    # splits added for checkpoints trained on non-reasoning data (general SFT, all-scenario RL, students)
    general_splits: list[str] = field(default_factory=list)
    max_prompts: int = 0  # 0: every prompt of the split
    prompts_per_batch: int = 64
    template: str = "chat"  # chat | r1_zero
    verifier: str = "reasoning_gym.score_answer==1.0"


@dataclass
class RolloutConfig:
    """Where completions are sampled. ``hf``: transformers ``generate`` (KV cache, stops at EOS),
    tested here. ``vllm``: for GPU users; imported lazily, never run on this CPU-only machine."""

    backend: str = "hf"  # hf | vllm
    prompts_per_batch: int = 64  # hf: prompts per generate call
    vllm_gpu_memory_utilization: float = 0.4
    vllm_dtype: str = "auto"


@dataclass
class GRPOConfig:
    """GRPO (R1_RECIPE.md §2) as used by R1-Zero, reasoning RL and all-scenario RL.

    One *step* is one optimizer step. A rollout of ``generation_batch_size`` completions
    (``generation_batch_size / group_size`` prompts × ``group_size``) is sampled every
    ``mu * generation_batch_size / mini_batch_size`` steps and reused for ``mu`` passes of
    mini-batches of ``mini_batch_size`` completions with π_old's log-probs cached. Paper values
    (R1, Nature 2025) are the defaults; the tiny experiment overrides them with tuned ones.
    """

    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-6, min_lr_ratio=1.0, warmup_steps=0,
                                                                   grad_clip=1.0))  # R1: lr 3e-6
    max_steps: int = 1700
    generation_batch_size: int = 512  # R1: 32 prompts x 16 = 512 completions per rollout
    group_size: int = 16  # G; R1: 16
    mini_batch_size: int = 512  # completions per optimizer step (R1 splits 8,192 into 16 mini-batches)
    mu: int = 1  # inner passes over one rollout (π_old fixed)
    beta: float = 0.001  # KL weight; R1: 0.001, DeepSeekMath: 0.04; 0 drops the reference model
    eps_low: float = 10.0  # R1 uses a large clip ε (10) on purpose; PPO/DAPO: 0.2
    eps_high: float = 10.0  # DAPO clip-higher: 0.28
    scale_rewards: str = "group"  # group (GRPO) | batch | none (Dr. GRPO)
    loss_type: str = "grpo"  # grpo | bnpo | dr_grpo | dapo
    mask_truncated: bool = False  # drop completions without EOS from the loss (DAPO)
    dynamic_sampling: bool = False  # DAPO: drop zero-std groups and refill the batch
    max_refill_rounds: int = 3
    ref_reset_every: int = 400  # R1: the reference is reset to the policy every 400 steps; 0: never
    temperature: float = 1.0  # R1 stage 2: 1.0; stage 4: 0.7
    top_p: float = 1.0
    max_new_tokens: int = 32768  # R1: 32,768
    template: str = "chat"  # chat | r1_zero
    rewards: dict[str, float] = field(default_factory=lambda: {"accuracy": 1.0, "format": 1.0, "language": 1.0})
    reward_kwargs: dict[str, Any] = field(default_factory=dict)
    # all-scenario RL: general prompts (data general_train + safety_train) scored by reward models;
    # they make up ``general_prompt_frac`` of a rollout's prompts in the last ``general_last_steps``
    general_prompt_frac: float = 0.0
    general_last_steps: int = 0  # R1: the last 400 of 1,700 steps
    # e.g. {helpfulness_rm: 1, format: 1}; an experiment's dict merges into the stage's: weight 0 turns one off
    general_rewards: dict[str, float] = field(default_factory=dict)
    reward_models: dict[str, str] = field(default_factory=dict)  # reward name -> RM checkpoint
    logprob_chunk_rows: int = 16  # rows per vocabulary projection (memory bound)
    eval_every: int = 50  # held-out pass@1 on a subset during training; 0: never
    eval_prompts: int = 128
    eval_k: int = 4
    table_every: int = 50  # sample-completions table artifact
    ckpt_every: int = 50
    rollout: RolloutConfig = field(default_factory=RolloutConfig)


@dataclass
class RejectionSamplingConfig:
    """Stage 3a (R1_RECIPE.md §1): ``n`` samples per training prompt from the reasoning-RL
    checkpoint; keep the correct, readable ones (r1flow/curation.py), at most ``max_per_prompt``."""

    n: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 96
    max_per_prompt: int = 2
    max_prompts: int = 0  # 0: every training prompt
    shard_size: int = 1000  # prompts per shard: one Snakemake job each (in parallel on a cluster)
    min_language: float = 1.0  # filters: share of CoT words in the prompt's script
    max_paragraph_words: int = 120
    max_repetition: float = 0.5  # share of repeated word 3-grams (step-by-step traces reach ~0.35)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    sampler: str = "reasoning_rl"  # the stage whose model is sampled (io.init_model overrides it)
    dataset: str = "rejection_sampled"  # MLflow name of the curated dataset


@dataclass
class ReportConfig:
    """The closing stage: results table and plots of every evaluated checkpoint, the paper-claims
    check (R1_RECIPE.md §6), and the model registry (one registered model, an alias per checkpoint)."""

    registered_model: str = "r1flow-${name}"
    aliases: dict[str, str] = field(default_factory=lambda: {"all_scenario_rl": "r1"})  # label -> alias
    register: bool = True


@dataclass
class IOConfig:
    """Paths — Snakemake owns them and passes them on the command line. The defaults are the DAG's
    own locations, so a stage run by hand (or a sweep) reads the DAG's upstream outputs."""

    data_dir: str = "${results_dir}/data"
    init_model: str | None = None  # model to start from / to evaluate (dir or hub id)
    out_dir: str | None = None  # default: ${results_dir}/<stage>
    upstream: list[str] = field(default_factory=list)  # upstream stage dirs (lineage)
    label: str | None = None  # evaluate: name of the evaluated checkpoint
    # rejection sampling under Snakemake: "shards" writes the prompt shards, "sample" samples the
    # shard file ``shard``, "merge" curates the sampled shards; "all" does the three in one process
    part: str = "all"
    shard: str | None = None


@dataclass
class RootConfig:
    name: str = "tiny"  # experiment name: results/<name>/, MLflow experiment r1flow/<name>
    seed: int = 0
    results_dir: str = "results/${name}"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    cold_start_sft: SFTConfig = field(default_factory=SFTConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    r1_zero: GRPOConfig = field(default_factory=GRPOConfig)
    reasoning_rl: GRPOConfig = field(default_factory=GRPOConfig)
    rejection_sampling: RejectionSamplingConfig = field(default_factory=RejectionSamplingConfig)
    general_sft: GeneralSFTConfig = field(default_factory=GeneralSFTConfig)
    all_scenario_rl: GRPOConfig = field(default_factory=GRPOConfig)
    helpfulness_rm: RewardModelConfig = field(default_factory=RewardModelConfig)
    harmlessness_rm: RewardModelConfig = field(default_factory=RewardModelConfig)
    distill_data: RejectionSamplingConfig = field(default_factory=lambda: RejectionSamplingConfig(
        sampler="all_scenario_rl", dataset="distillation"))
    distill: GeneralSFTConfig = field(default_factory=GeneralSFTConfig)
    # students (R1_RECIPE.md §4): name -> model overrides of a smaller model of the same family,
    # pretrained by the pretrain stage and trained by SFT only on the distillation data; adding a
    # student is one line, e.g. ``students: {small: {hidden_size: 64, intermediate_size: 256}}``
    students: dict[str, dict[str, Any]] = field(default_factory=dict)
    rl_only_students: list[str] = field(default_factory=list)  # also trained by cold-start SFT + GRPO
    student: str | None = None  # the student a stage run is for: its model is ``model`` + students[student]
    report: ReportConfig = field(default_factory=ReportConfig)
    io: IOConfig = field(default_factory=IOConfig)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="r1flow_schema", node=RootConfig)
    for group, node in [("model", ModelConfig), ("data", DataConfig), ("trainer", TrainerConfig)]:
        cs.store(group=group, name=f"{group}_schema", node=node)
    cs.store(group="stage", name="sft_schema", node=SFTConfig)
    cs.store(group="stage", name="pretrain_schema", node=PretrainConfig)
    cs.store(group="stage", name="evaluate_schema", node=EvalConfig)
    cs.store(group="stage", name="grpo_schema", node=GRPOConfig)
    cs.store(group="stage", name="rejection_sampling_schema", node=RejectionSamplingConfig)
    cs.store(group="stage", name="general_sft_schema", node=GeneralSFTConfig)
    cs.store(group="stage", name="reward_model_schema", node=RewardModelConfig)
    cs.store(group="stage", name="report_schema", node=ReportConfig)


register_configs()

# What each stage's result depends on: the config sections Snakemake feeds it as its input file.
STAGE_SECTIONS: dict[str, list[str]] = {
    "data": ["data", "model.init", "model.name_or_path"],
    "pretrain": ["model", "pretrain", "trainer"],
    "cold_start_sft": ["model", "cold_start_sft", "trainer"],
    "evaluate": ["evaluate", "model.dtype", "model.attn_implementation"],
    "reasoning_rl": ["model", "reasoning_rl", "trainer"],
    "r1_zero": ["model", "r1_zero", "trainer"],
    "rejection_sampling": ["rejection_sampling", "model.dtype", "model.attn_implementation"],
    "general_sft": ["model", "general_sft", "trainer"],
    "helpfulness_rm": ["model", "helpfulness_rm", "trainer"],
    "harmlessness_rm": ["model", "harmlessness_rm", "trainer"],
    "all_scenario_rl": ["model", "all_scenario_rl", "trainer"],
    "distill_data": ["distill_data", "model.dtype", "model.attn_implementation"],
    "distill": ["model", "distill", "trainer"],
    "report": ["report"],
}
# Stages a student runs: its model section is the student's (see ``with_student``).
STUDENT_STAGES = ("pretrain", "distill", "cold_start_sft", "reasoning_rl")
CURATION_STAGES = ("rejection_sampling", "distill_data")
GRPO_STAGES = ("r1_zero", "reasoning_rl", "all_scenario_rl")
RM_STAGES = ("helpfulness_rm", "harmlessness_rm")


def with_student(cfg: DictConfig, student: str | None = None) -> DictConfig:
    """``cfg`` with its model replaced by student ``student`` (default: ``cfg.student``): the
    teacher's model section merged with ``students[student]``. Unchanged when no student is set."""
    name = student or cfg.student
    if not name:
        return cfg
    if name not in cfg.students:
        raise ValueError(f"config error: student: {name!r} is not one of students ({', '.join(cfg.students) or 'none'})")
    if cfg.model.init != "scratch":
        raise ValueError("config error: students: students are built and pretrained from scratch (model.init=scratch)")
    out = cfg.copy()
    with open_dict(out):
        out.model = OmegaConf.merge(cfg.model, cfg.students[name])
        out.model.name = f"{cfg.model.name}-{name}"
        out.student = name
    return out


def stage_view(cfg: DictConfig, stage: str) -> dict:
    """The resolved config sections that ``stage``'s outputs depend on (plus name, seed, student)."""
    view: dict[str, Any] = {"name": cfg.name, "seed": cfg.seed}
    if cfg.student:
        view["student"] = cfg.student
    for key in STAGE_SECTIONS[stage]:
        value = OmegaConf.select(cfg, key)
        view[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
    return view


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose conf/config.yaml with Hydra's compose API (tests, Snakefile, sweeps)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides or []))


def validate(cfg: DictConfig) -> None:
    """Checks beyond types: fail before compute with a message naming the key."""

    def bad(key: str, why: str) -> None:
        raise ValueError(f"config error: {key}: {why}")

    if cfg.model.init not in ("scratch", "pretrained"):
        bad("model.init", f"must be 'scratch' or 'pretrained', got {cfg.model.init!r}")
    if cfg.model.init == "pretrained" and not cfg.model.name_or_path:
        bad("model.name_or_path", "required when model.init=pretrained")
    if cfg.model.hidden_size % cfg.model.num_heads or cfg.model.num_heads % cfg.model.num_kv_heads:
        bad("model.num_heads", "hidden_size must divide by num_heads and num_heads by num_kv_heads")
    if not cfg.data.families:
        bad("data.families", "at least one reasoning-gym family is required")
    if not 0 < cfg.data.heldout_permille < 1000:
        bad("data.heldout_permille", "must be in (0, 1000)")
    if cfg.evaluate.k < 1:
        bad("evaluate.k", "must be >= 1")
    if cfg.evaluate.template not in ("chat", "r1_zero"):
        bad("evaluate.template", "must be 'chat' or 'r1_zero'")
    for key in ("splits", "general_splits"):
        for split in cfg.evaluate[key]:
            if split not in ("heldout", "hard", "train", "general", "safety"):
                bad(f"evaluate.{key}", f"unknown split {split!r} (heldout, hard, train, general, safety)")
            if split in ("general", "safety") and not cfg.data.general_families:
                bad(f"evaluate.{key}", f"the {split!r} split needs data.general_families")
    for name in GRPO_STAGES:
        validate_grpo(cfg[name], name)
    for name in CURATION_STAGES:
        rs = cfg[name]
        if rs.n < 1 or rs.max_per_prompt < 1 or rs.shard_size < 1:
            bad(name, "n, max_per_prompt and shard_size must be >= 1")
    if cfg.io.part not in ("all", "shards", "sample", "merge"):
        bad("io.part", f"must be all, shards, sample or merge, got {cfg.io.part!r}")
    for name in ("general_sft", "distill"):
        if not 0 <= cfg[name].general_frac < 1:
            bad(f"{name}.general_frac", "must be in [0, 1)")
    model_keys = set(ModelConfig.__dataclass_fields__)
    for name, overrides in cfg.students.items():
        unknown = set(overrides) - model_keys
        if unknown:
            bad(f"students.{name}", f"unknown model keys {sorted(unknown)} (a student overrides model.*)")
        student = OmegaConf.merge(cfg.model, overrides)
        if student.hidden_size % student.num_heads or student.num_heads % student.num_kv_heads:
            bad(f"students.{name}", "hidden_size must divide by num_heads and num_heads by num_kv_heads")
    for name in cfg.rl_only_students:
        if name not in cfg.students:
            bad("rl_only_students", f"{name!r} is not one of students ({', '.join(cfg.students) or 'none'})")
    for name in RM_STAGES:
        rm = cfg[name]
        if rm.mode not in ("pairwise", "pointwise"):
            bad(f"{name}.mode", f"must be pairwise or pointwise, got {rm.mode!r}")
        if rm.target not in ("summary", "response"):
            bad(f"{name}.target", f"must be summary or response, got {rm.target!r}")
    for name in ("pretrain", "cold_start_sft", "general_sft", "distill", *RM_STAGES):
        sec = cfg[name]
        if sec.batch_size < 1:
            bad(f"{name}.batch_size", "must be >= 1")
        if not 0 < sec.optim.lr < 1:
            bad(f"{name}.optim.lr", f"must be in (0, 1), got {sec.optim.lr}")


def validate_grpo(g: DictConfig, name: str) -> None:
    """GRPO batch arithmetic and choices, checked before any compute."""
    from r1flow.grpo_loss import LOSS_TYPES, SCALINGS

    def bad(key: str, why: str) -> None:
        raise ValueError(f"config error: {name}.{key}: {why}")

    if g.group_size < 2:
        bad("group_size", "GRPO needs at least 2 completions per prompt")
    if g.generation_batch_size % g.group_size:
        bad("generation_batch_size", f"{g.generation_batch_size} is not a multiple of group_size={g.group_size} "
            "(a rollout holds whole groups of G completions per prompt)")
    if g.mini_batch_size % g.group_size or g.generation_batch_size % g.mini_batch_size:
        bad("mini_batch_size", f"{g.mini_batch_size} must be a multiple of group_size={g.group_size} and divide "
            f"generation_batch_size={g.generation_batch_size}")
    if g.loss_type not in LOSS_TYPES:
        bad("loss_type", f"{g.loss_type!r} is not one of {LOSS_TYPES}")
    if g.scale_rewards not in SCALINGS:
        bad("scale_rewards", f"{g.scale_rewards!r} is not one of {SCALINGS}")
    if g.template not in ("chat", "r1_zero"):
        bad("template", "must be 'chat' or 'r1_zero'")
    if g.rollout.backend not in ("hf", "vllm"):
        bad("rollout.backend", "must be 'hf' or 'vllm'")
    if g.mu < 1 or g.beta < 0 or g.temperature <= 0:
        bad("mu/beta/temperature", "need mu >= 1, beta >= 0, temperature > 0")
    from r1flow.rewards import REWARDS

    for key in ("rewards", "general_rewards"):
        for r in g[key]:
            if r not in REWARDS:
                bad(key, f"unknown reward {r!r} (known: {', '.join(sorted(REWARDS))})")
            if r.endswith("_rm") and r not in g.reward_models:
                bad("reward_models", f"reward {r!r} needs its checkpoint in reward_models.{r}")
    if not 0 <= g.general_prompt_frac <= 1 or g.general_last_steps < 0:
        bad("general_prompt_frac", "needs 0 <= general_prompt_frac <= 1 and general_last_steps >= 0")
    if g.general_prompt_frac > 0 and g.general_last_steps > 0 and not g.general_rewards:
        bad("general_rewards", "general prompts need rewards of their own (e.g. helpfulness_rm, format)")
