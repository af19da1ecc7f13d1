"""Stages that sample a finished model: evaluation and curation (rejection sampling, distillation data)."""

from __future__ import annotations

from dataclasses import dataclass

from r1flow.config.knobs import Template, knob
from r1flow.config.rl import RolloutConfig


@dataclass
class EvalConfig:
    """Sampling evaluation: k samples per prompt, pass@1 with its 95 % interval, cons@k, pass@k."""

    k: int = knob(8, "Samples per prompt.", paper="4 to 64 (§3)")
    temperature: float = knob(0.6, "Sampling temperature.", paper="0.6 (§3)")
    top_p: float = knob(0.95, "Nucleus sampling.", paper="0.95 (§3)")
    max_new_tokens: int = knob(96, "Longest completion.", paper="32,768 (§3)")
    seed: int = knob(0, "Sampling seed (set before each split).")
    splits: list[str] = knob(["heldout", "hard"], "Splits every checkpoint is evaluated on; the first is the "
                             "primary one (heldout, hard, train, general, safety).")
    general_splits: list[str] = knob([], "Splits added for checkpoints trained on non-reasoning data "
                                     "(general SFT, all-scenario RL, distilled students).")
    max_prompts: int = knob(0, "Prompts per split (0: all).")
    rollout: RolloutConfig = knob(RolloutConfig(), "Sampling backend.")
    template: Template = knob(Template.chat, "Prompt template (R1-Zero's model is evaluated on its own).")


@dataclass
class CurationConfig:
    """Rejection sampling: ``n`` samples per training prompt from the ``sampler`` stage's model;
    keep the correct, readable ones (r1flow/sampling/curation.py), at most ``max_per_prompt`` each."""

    n: int = knob(4, "Samples per prompt.")
    temperature: float = knob(0.6, "Sampling temperature.")
    top_p: float = knob(0.95, "Nucleus sampling.")
    max_new_tokens: int = knob(96, "Longest completion (a truncated one is dropped).")
    max_per_prompt: int = knob(2, "Samples kept per prompt at most.")
    max_prompts: int = knob(0, "Training prompts sampled (0: all).")
    shard_size: int = knob(1000, "Prompts per shard: one Snakemake job each (in parallel on a cluster); each shard "
                           "samples from its own seed, so the size also sets which samples are drawn.")
    min_language: float = knob(1.0, "Filter: share of CoT words in the prompt's script.",
                               paper="drop CoT with mixed languages (§2.3.3)")
    max_paragraph_words: int = knob(120, "Filter: words of the longest paragraph.",
                                    paper="drop long paragraphs (§2.3.3)")
    max_repetition: float = knob(0.5, "Filter: share of repeated word 3-grams (step-by-step traces reach ~0.35).")
    rollout: RolloutConfig = knob(RolloutConfig(), "Sampling backend.")
    sampler: str = knob("reasoning_rl", "The stage whose model is sampled (base: the base model). "
                        "A choice of edge: it moves the DAG and the lineage.",
                        paper="the reasoning-RL checkpoint (§2.3.3)")
    dataset: str = knob("rejection_sampled", "MLflow name of the curated dataset.")
