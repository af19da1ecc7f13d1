"""Models and tokenizers: build the tiny architecture from config, or load any HF causal LM.

One loading path for both worlds: a stage is handed a directory or hub id and calls
``load_model``/``load_tokenizer`` (``from_pretrained``); only the pretrain stage of the embedded
world builds a model from scratch with ``build_model``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from transformers import (
    AttentionInterface,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from r1flow.config.base import ModelConfig
from r1flow.harness.model_source import check_model_source
from r1flow.sampling.rollout import Generator, make_generator

GENERIC_TOKENIZERS = ("TokenizersBackend", "PreTrainedTokenizerFast")
log = logging.getLogger("r1flow.models")


def sdpa_gqa_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                       scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """transformers' ``sdpa`` kernel, except that on CPU grouped key/value heads go to PyTorch's SDPA
    whole (``enable_gqa``) also under a padding mask. transformers copies each KV head to its query
    heads whenever a mask is given (CUDA's fused kernels take GQA only without one), and in batched,
    left-padded decoding that copies the whole KV cache at every step: ``generate`` samples 1.34x
    the tokens/s on the tiny model, 2.10x on a 24 M one with 8 query heads over 2
    (bench/rollout_vllm_vs_hf.py). The same sampled tokens and gradients (tests/test_grpo.py). Elsewhere
    (GPUs, no grouped heads, a position bias, a paged cache) it is transformers' ``sdpa``."""
    groups = getattr(module, "num_key_value_groups", 1)
    special = kwargs.get("position_bias") is not None or kwargs.get("cache") is not None
    if query.device.type != "cpu" or groups == 1 or special:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = query.shape[2] > 1 and attention_mask is None and causal
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, is_causal=causal,
        enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register("sdpa_gqa", sdpa_gqa_attention)
AttentionMaskInterface.register("sdpa_gqa", sdpa_mask)  # the masks sdpa takes (without it: no mask at all)


def resolve_dtype(name: str, accelerator: str = "cpu") -> torch.dtype:
    """``auto`` is float32 on CPU (bf16 matmul is ~50x slower there) and bfloat16 on GPU."""
    if name == "auto":
        gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
        return torch.bfloat16 if gpu else torch.float32
    return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
            "float16": torch.float16, "fp16": torch.float16}[name]


def inference_device(accelerator: str = "cpu") -> torch.device:
    """Where a stage that only samples (curation, evaluation) puts its model: the trainer's
    accelerator — this process's GPU under a multi-process launcher (LOCAL_RANK), else the CPU."""
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if accelerator == "gpu":
        raise ValueError("config error: trainer.accelerator: gpu, but torch sees no CUDA device")
    return torch.device("cpu")


def build_model(cfg: ModelConfig, tokenizer) -> PreTrainedModel:
    """A randomly initialised Qwen2 or Llama model of the configured size, for ``tokenizer``."""
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings,
        rope_theta=cfg.rope_theta,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if cfg.arch == "qwen2":
        config = Qwen2Config(**common)
    elif cfg.arch == "llama":
        config = LlamaConfig(**common)
    else:
        raise ValueError(f"config error: model.arch: unknown architecture {cfg.arch!r} (qwen2, llama)")
    config._attn_implementation = cfg.attn_implementation
    return AutoModelForCausalLM.from_config(config)


def load_tokenizer(path_or_id: str, trust_remote_code: bool = False):
    check_model_source(path_or_id, "tokenizer_config.json")
    local_cfg = Path(path_or_id) / "tokenizer_config.json"
    generic = local_cfg.is_file() and json.loads(local_cfg.read_text()).get("tokenizer_class") in GENERIC_TOKENIZERS
    if generic:
        # a tokenizer.json of our own: AutoTokenizer would pick the architecture's tokenizer class
        # (e.g. Qwen2Tokenizer, which rebuilds a BPE pipeline) and ignore its pre-tokenizer
        tok = PreTrainedTokenizerFast.from_pretrained(path_or_id)
    else:
        tok = AutoTokenizer.from_pretrained(path_or_id, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path_or_id: str, cfg: ModelConfig, accelerator: str = "cpu", scalar_head: bool = False,
               pad_token_id: int | None = None, place: bool = False) -> PreTrainedModel:
    """The causal LM at ``path_or_id``; ``scalar_head``: the same backbone with a one-output score
    head on the last non-pad token (a reward model; the head is new when loading a causal LM).
    ``place``: move it to the accelerator (a model Lightning does not place: samplers, scorers)."""
    check_model_source(path_or_id)
    kwargs = dict(dtype=resolve_dtype(cfg.dtype, accelerator), attn_implementation=cfg.attn_implementation,
                  trust_remote_code=cfg.trust_remote_code)
    if scalar_head:
        model = AutoModelForSequenceClassification.from_pretrained(path_or_id, num_labels=1,
                                                                   pad_token_id=pad_token_id, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(path_or_id, **kwargs)
    return model.to(inference_device(accelerator)) if place else model


LOADER_KEYS = ("is_local", "local_files_only")  # how it was loaded, not what it is: kept out of exports


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights, on CPU. Every rank must call it: under FSDP each rank holds a shard
    and this gathers them (a collective); under DDP or in one process it is the state dict."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    first: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if first.setdefault(id(param), name) != name:  # a tied weight (the head of tied embeddings): saved once,
            weights.pop(name, None)  # as save_pretrained saves it; gathered, the two would be separate copies
    return weights


def mean_init_rows(weights: dict, rows: list[int]) -> None:
    """Set ``rows`` of the token embedding (and of an untied output projection) in the state dict
    ``weights`` to the mean of the other rows, in place."""
    if not rows:
        return
    done = set()
    for key, w in weights.items():
        if key.endswith(("embed_tokens.weight", "lm_head.weight")) and w.data_ptr() not in done:
            done.add(w.data_ptr())
            keep = torch.ones(w.shape[0], dtype=torch.bool)
            keep[rows] = False
            with torch.no_grad():
                w[rows] = w[keep].mean(dim=0)


def export_hf(model: PreTrainedModel, tokenizer, out_dir: str | Path, state_dict: dict | None = None) -> Path:
    """Save a plain Hugging Face directory (safetensors weights, config, tokenizer, chat template),
    and check that a standard client (``AutoTokenizer``: vLLM, lm-eval) reads the same token ids.
    ``state_dict``: the gathered weights of a sharded model (``full_state_dict``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(out)
    tok_cfg = out / "tokenizer_config.json"
    cfg = json.loads(tok_cfg.read_text())
    tok_cfg.write_text(json.dumps({k: v for k, v in cfg.items() if k not in LOADER_KEYS}, indent=2) + "\n")
    if not standard_ids_agree(tokenizer, out):
        log.warning("%s: AutoTokenizer loads %s for model_type %s and tokenizes differently from the checkpoint's own "
                    "tokenizer.json; standard clients (vLLM, lm-eval) will read wrong ids. The embedded world's "
                    "word-level tokenizer needs model.arch=llama for that.", out,
                    type(AutoTokenizer.from_pretrained(out)).__name__, model.config.model_type)
    return out


def standard_ids_agree(tokenizer, path: str | Path) -> bool:
    """Whether ``AutoTokenizer`` on ``path`` gives ``tokenizer``'s ids on a chat-formatted probe."""
    probe = "Tom has 12 apples, eats 3: 12 - 3 = 9.\n<think>\nok\n</think>\nThe answer is <answer>9</answer>."
    if tokenizer.chat_template:
        probe = tokenizer.apply_chat_template([{"role": "user", "content": probe},
                                               {"role": "assistant", "content": probe}], tokenize=False)
    auto = AutoTokenizer.from_pretrained(path)
    return auto(probe, add_special_tokens=False)["input_ids"] == tokenizer(probe, add_special_tokens=False)["input_ids"]


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sampler_of(ctx, rollout_cfg, tokenizer, progress: bool = True) -> Generator:
    """The generator of a stage that samples a checkpoint without training it (curation,
    evaluation): ``generate`` on the model loaded onto the accelerator, or a vLLM engine that loads
    the checkpoint itself (no second copy of the weights)."""
    cfg = ctx.cfg
    model = None
    if rollout_cfg.backend != "vllm":
        model = load_model(ctx.init, cfg.model, cfg.trainer.accelerator, place=True).eval()
    return make_generator(rollout_cfg, model, tokenizer, ctx.init, progress=progress, seed=cfg.seed)
