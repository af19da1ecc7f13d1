"""The model, the Lightning Trainer and the cluster resources of a job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r1flow.config.knobs import Arch, DType, ModelInit, knob


@dataclass
class ModelConfig:
    """The policy model. ``init=scratch`` builds the architecture below (the embedded world: the
    pretrain stage trains it); ``init=pretrained`` loads ``name_or_path`` with ``from_pretrained``
    and the pipeline skips pretraining. The architecture defaults are the embedded world's base
    model: a ~1 M-parameter Qwen2 (students override some of them, see ``students``)."""

    name: str = knob("tiny-qwen2", "Name of the model, used in the names of the logged MLflow models.")
    init: ModelInit = knob(ModelInit.scratch, "scratch: build and pretrain the architecture below; "
                           "pretrained: load name_or_path.")
    name_or_path: str | None = knob(None, "Hub id or local directory of the base model (init=pretrained).",
                                    paper="DeepSeek-V3-Base (§2.2); students: Qwen2.5 / Llama 3 (§2.4)")
    arch: Arch = knob(Arch.qwen2, "Architecture built from scratch (init=scratch).")
    hidden_size: int = knob(128, "Width of the model built from scratch.")
    num_layers: int = knob(4, "Decoder layers of the model built from scratch.")
    num_heads: int = knob(4, "Attention heads (hidden_size must divide by it).")
    num_kv_heads: int = knob(2, "Key/value heads, grouped-query attention (num_heads must divide by it).")
    intermediate_size: int = knob(512, "Width of the MLP of the model built from scratch.")
    max_position_embeddings: int = knob(256, "Longest sequence the model built from scratch can read.")
    tie_word_embeddings: bool = knob(True, "Share the input embedding and the output projection.")
    rope_theta: float = knob(10000.0, "Base of the rotary position embedding.")
    dtype: DType = knob(DType.auto, "Weights' dtype when loading: auto is float32 on CPU, bfloat16 on GPU.")
    attn_implementation: str = knob("sdpa_gqa", "transformers' attention kernel: sdpa, eager, flash_attention_2, "
                                    "...; sdpa_gqa is sdpa with grouped KV heads passed whole on CPU "
                                    "(r1flow/harness/models.py), transformers' sdpa elsewhere.")
    trust_remote_code: bool = knob(False, "Allow a hub model's own modelling code (from_pretrained).")


@dataclass
class TrainerConfig:
    """Lightning Trainer settings: strategy, devices and precision are what GPU runs change."""

    accelerator: str = knob("cpu", "Lightning accelerator: cpu, gpu, auto.")
    devices: Any = knob(1, "Devices per node (an int, a list of ids, or auto).")
    num_nodes: int = knob(1, "Nodes of a multi-node run.")
    strategy: str = knob("auto", "Lightning strategy: auto, ddp, fsdp2 (FSDP2 through Lightning's ModelParallelStrategy: "
                         "decoder layers and model sharded over all ranks; runs on CPU too), fsdp (FSDP1, GPUs "
                         "only), deepspeed_stage_2, ...")
    precision: str = knob("32-true", "Lightning precision: 32-true on CPU, bf16-mixed on GPUs.")
    log_every_n_steps: int = knob(10, "Steps between metric logs (the GRPO stages log every step).")
    enable_progress_bar: bool = knob(True, "Show progress bars in the job logs.")
    num_threads: int = knob(0, "torch intra-op threads (Snakemake sets the job's threads); 0 keeps torch's default.")
    accumulate_grad_batches: int = knob(1, "Gradient accumulation over this many batches (SFT, reward models).")


@dataclass
class JobResources:
    """What a job asks of a cluster scheduler (Snakemake resources; the local executor ignores them)."""

    gpus: int = knob(0, "GPUs per node (--gres=gpu:N); a training job runs one process per GPU.")
    cpus: int = knob(2, "CPU cores per task on a cluster (a training job has one task per device; "
                     "threads of a local job: Snakemake's job_threads).")
    mem_mb: int = knob(8000, "Memory per node, MB.")
    runtime: int = knob(60, "Wall-time limit per job, minutes.")


@dataclass
class ResourcesConfig:
    """Resources of each job class. The stage table (r1flow/dag.py) gives every stage a class."""

    light: JobResources = knob(JobResources(cpus=1, mem_mb=4000, runtime=30),
                               "Bookkeeping jobs: data, prompt shards, merges, the report.")
    train: JobResources = knob(JobResources(), "Training jobs: pretraining, SFT, reward models.")
    rl: JobResources = knob(JobResources(), "GRPO jobs: sampling and training in one process.")
    sample: JobResources = knob(JobResources(), "Sampling jobs: curation shards and evaluations.")


def explicit_devices(devices: Any) -> int | None:
    """How many devices per node ``trainer.devices`` names (an int, "2", "0,1" or a list); None for
    "auto", whose count depends on the machine."""
    if isinstance(devices, int):
        return devices
    if isinstance(devices, str):
        if devices == "auto":
            return None
        return int(devices) if devices.isdigit() else len(devices.split(","))
    return len(devices)  # a list (or OmegaConf ListConfig) of device ids
