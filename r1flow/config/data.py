"""Prompts, splits and the corpora of the embedded world (written by the data stage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from r1flow.config.knobs import knob


@dataclass
class FamilyConfig:
    """One reasoning-gym family: its generator parameters for the train/held-out splits and for the
    harder held-out split that measures generalisation (e.g. more terms)."""

    name: str = knob(MISSING, "reasoning-gym dataset name, e.g. chain_sum.")
    weight: float = knob(1.0, "Share of the split's items drawn from this family (normalised over families).")
    params: dict[str, Any] = knob({}, "Generator parameters of the train and held-out splits.")
    hard_params: dict[str, Any] = knob({}, "Generator parameters of the harder held-out split.")
    top_words: int = knob(0, "General families: keep items whose words are all among the K most frequent (0: all).")


@dataclass
class DataConfig:
    """Reasoning prompts of every split, the cold-start set, non-reasoning tasks and, for a model
    built from scratch, the tokenizer and the pretraining corpus."""

    families: list[FamilyConfig] = knob([], "Reasoning families (at least one), conf/data/*.yaml.")
    heldout_permille: int = knob(150, "Share of the expression space (by hash) that is held out, per mille.")
    max_abs: int = knob(99, "Drop items whose solution leaves the tokenizer's integer range.")
    n_train: int = knob(4000, "RL and rejection-sampling prompts.")
    n_heldout: int = knob(1000, "Held-out evaluation prompts (1,000: pass@1's 95 % interval is about +-2 points).")
    n_hard: int = knob(400, "Prompts of the harder held-out split.")
    n_cold_start: int = knob(2000, "Cold-start SFT examples, distinct from the RL prompts.",
                             paper="thousands of long-CoT examples (§2.3.1)")
    cold_start_terse_frac: float = knob(0.0, "Share of cold-start answers written tersely: the value alone, "
                                        "without the intermediate rewrites.")
    general_families: list[FamilyConfig] = knob([], "Non-reasoning families (general SFT, all-scenario RL), "
                                                "answered directly without a CoT.",
                                                paper="~200k non-reasoning samples; trivial queries get no CoT (§2.3.3)")
    n_general_train: int = knob(2000, "Non-reasoning training prompts.")
    n_general_heldout: int = knob(300, "Non-reasoning held-out prompts (the general split).")
    pretrain_docs: int = knob(40000, "Documents of the pretraining corpus (model.init=scratch only).")
    pretrain_fact_frac: float = knob(0.4, "Share of documents that are arithmetic facts 'a op b = c'.")
    pretrain_worked_frac: float = knob(0.25, "Share of documents that are worked examples in the chat format, "
                                       "tags and end-of-turn included.")
    pretrain_general_frac: float = knob(0.0, "Share of documents that are general tasks as plain text "
                                        "(question, then answer).")
    pretrain_max_terms: int = knob(5, "Most terms of a rewrite chain in the pretraining corpus.")
    pretrain_ops: str = knob("+-*", "Operators of the pretraining corpus.")
    seed: int = knob(1234, "Seed of every generator of the data stage.")
