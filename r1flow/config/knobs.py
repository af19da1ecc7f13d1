"""How a config field is declared: its default, what it does, and what the paper used.

Every field of the schema is a :func:`knob`, so each default is stated once, next to its meaning
(``docs/config.md`` is generated from these declarations: ``python -m r1flow.config.reference``).
``paper`` cites DeepSeek-R1 (arXiv:2501.12948): ``§`` numbers are the sections of its first
version; "v2" marks the hyperparameters its second version (the Nature 2025 paper) added.
"""

from __future__ import annotations

import copy
from dataclasses import field, is_dataclass
from enum import StrEnum
from typing import Any


def knob(default: Any, help: str, paper: str | None = None) -> Any:  # noqa: A002 - TRL's name for it
    """A documented dataclass field. Mutable defaults (lists, dicts, dataclasses) are copied per instance."""
    meta = {"help": help, "paper": paper}
    if isinstance(default, list | dict) or is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


class ModelInit(StrEnum):
    scratch = "scratch"  # build the architecture of the model section; the pretrain stage trains it
    pretrained = "pretrained"  # load model.name_or_path; the pipeline has no pretrain stage


class Arch(StrEnum):
    qwen2 = "qwen2"
    llama = "llama"


class DType(StrEnum):
    auto = "auto"  # float32 on CPU (bf16 matmul is ~50x slower there), bfloat16 on GPU
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class Template(StrEnum):
    chat = "chat"  # the tokenizer's chat template with its generation prompt
    r1_zero = "r1_zero"  # the paper's R1-Zero template (Table 1)


class Source(StrEnum):
    reasoning_gym = "reasoning_gym"  # procedurally generated families (data.families): the embedded world
    files = "files"  # the user's own table of problems and answers (data.files): JSONL, Parquet, CSV, hub id


class AnswerFormat(StrEnum):
    tags = "tags"  # the summary gives the final answer in <answer>...</answer> (the R1 paper's template)
    boxed = "boxed"  # the summary gives it in \boxed{...} (math models: Qwen2.5-Math, OpenR1)


class ScaleRewards(StrEnum):
    group = "group"  # (r - mean) / std over the group: GRPO
    batch = "batch"  # std over the whole batch
    none = "none"  # no std division (Dr. GRPO)


class LossType(StrEnum):
    grpo = "grpo"  # mean over sequences of each sequence's token mean
    bnpo = "bnpo"  # token mean over the micro-batch
    dr_grpo = "dr_grpo"  # token sum / (batch x max_new_tokens)
    dapo = "dapo"  # token sum / active tokens of the whole generation batch


class Backend(StrEnum):
    hf = "hf"  # transformers' generate
    vllm = "vllm"  # vLLM's offline engine


class RMMode(StrEnum):
    pairwise = "pairwise"  # Bradley-Terry on (chosen, rejected) pairs
    pointwise = "pointwise"  # chosen = safe (1), rejected = unsafe (0)


class RMTarget(StrEnum):
    summary = "summary"  # the text after </think>
    response = "response"  # the whole response, reasoning included


class Part(StrEnum):
    all = "all"  # a curation stage by hand: shards, sampling and merge in one process
    shards = "shards"  # write the prompt shards (a Snakemake checkpoint)
    sample = "sample"  # sample, verify and filter one shard (io.shard)
    merge = "merge"  # curate the union of the sampled shards
