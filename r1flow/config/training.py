"""Supervised stages: pretraining, the SFT stages (cold start, general SFT, distillation) and the
reward models."""

from __future__ import annotations

from dataclasses import dataclass

from r1flow.config.knobs import RMMode, RMTarget, knob


@dataclass
class OptimConfig:
    """AdamW with a linear warm-up, then cosine decay to ``lr * min_lr_ratio``."""

    lr: float = knob(5e-5, "Peak learning rate.", paper="SFT: 5e-5 cosine-decayed to 5e-6 (v2)")
    min_lr_ratio: float = knob(0.1, "Final learning rate as a share of lr (1.0: constant after warm-up).")
    warmup_steps: int = knob(20, "Steps of linear warm-up.")
    weight_decay: float = knob(0.0, "AdamW weight decay (never on biases and norms).")
    betas: list[float] = knob([0.9, 0.95], "AdamW betas.")
    grad_clip: float = knob(1.0, "Gradient-norm clip (0: none).")


@dataclass
class PretrainConfig:
    """Pretraining from scratch on the procedurally generated corpus (loss on every token)."""

    optim: OptimConfig = knob(OptimConfig(lr=3e-3, warmup_steps=100, weight_decay=0.01), "Optimizer.")
    max_steps: int = knob(1200, "Optimizer steps (the base model's skill grows with steps more than tokens).")
    batch_size: int = knob(16, "Blocks per optimizer step, over all processes (each of N takes 1/N).")
    seq_len: int = knob(128, "Tokens per packed block.")
    val_every: int = knob(500, "Steps between validation-loss checks.")
    val_batches: int = knob(20, "Batches of each validation check.")
    ckpt_every: int = knob(500, "Steps between resumable checkpoints.")


@dataclass
class SupervisedConfig:
    """A supervised run (SFT, reward models): its optimizer, length, batches and checks."""

    optim: OptimConfig = knob(OptimConfig(), "Optimizer.")
    epochs: int = knob(2, "Passes over the data.", paper="2-3 epochs (§2.3.3, v2)")
    max_steps: int = knob(-1, "Bound on optimizer steps; -1: as many as the epochs take.")
    batch_size: int = knob(16, "Rows per optimizer step, over all processes (each of N takes 1/N).",
                            paper="128 (v2)")
    max_length: int = knob(256, "Tokens per row (prompt + response); longer rows are cut.")
    val_every: int = knob(100, "Steps between validation checks.")
    ckpt_every: int = knob(200, "Steps between resumable checkpoints.")


@dataclass
class SFTConfig(SupervisedConfig):
    """Supervised fine-tuning with the loss on the response tokens only (cold start)."""

    val_fraction: float = knob(0.05, "Share of rows held out for the validation loss.")
    bucket_factor: int = knob(32, "Length bucketing: rows are sorted by length within windows of "
                              "bucket_factor x batch_size, so a batch wastes little on padding.")


@dataclass
class MixedSFTConfig(SFTConfig):
    """SFT on curated reasoning samples mixed with non-reasoning rows (distillation)."""

    general_frac: float = knob(0.25, "Share of non-reasoning rows in the mix.",
                               paper="~200k of ~800k samples (§2.3.3, §2.4)")


@dataclass
class GeneralSFTConfig(MixedSFTConfig):
    """Stage 3b: SFT on the rejection-sampled reasoning data mixed with non-reasoning data."""

    start_from: str = knob("base", "The stage whose model general SFT trains (base: the base model). "
                           "A choice of edge: it moves the DAG and the lineage.",
                           paper="the base model, not the reasoning-RL checkpoint (§2.3.3)")


@dataclass
class RewardModelConfig(SupervisedConfig):
    """A reward model: the ``start_from`` stage's LM with a scalar head, trained on
    ``prompt, chosen, rejected`` JSONL (point ``train_data``/``heldout_data`` at real preference data)."""

    optim: OptimConfig = knob(OptimConfig(lr=6e-6, warmup_steps=0), "Optimizer.", paper="lr 6e-6 (v2)")
    epochs: int = knob(1, "Passes over the pairs.", paper="1 epoch (v2)")
    batch_size: int = knob(256, "Pairs per optimizer step, over all processes (each of N takes 1/N).",
                            paper="256 (v2)")
    val_every: int = knob(50, "Steps between held-out checks.")
    mode: RMMode = knob(RMMode.pairwise, "pairwise (Bradley-Terry) or pointwise (chosen = safe, rejected = unsafe).")
    target: RMTarget = knob(RMTarget.summary, "What is scored: the summary after </think>, or the whole response.")
    train_data: str = knob("${io.data_dir}/helpfulness_train.jsonl", "Training pairs (prompt, chosen, rejected).")
    heldout_data: str = knob("${io.data_dir}/helpfulness_heldout.jsonl", "Held-out pairs: the reported accuracy.")
    start_from: str = knob("general_sft", "The stage whose model gets the scalar head (base: the base model). "
                           "A choice of edge: it moves the DAG and the lineage.")
