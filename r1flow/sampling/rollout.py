"""Sampling completions: Hugging Face ``generate`` with a KV cache, each sequence stopping at the
first of its stop ids — EOS, the generation config's EOS ids and the chat template's end of turn
(r1flow/sampling/prompts.py: ``stop_token_ids``).

Used by evaluation (k samples per prompt), GRPO rollouts and the checks during training, and curation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from r1flow.sampling.prompts import stop_token_ids


@dataclass
class Completion:
    text: str  # decoded response, its stop token excluded
    token_ids: list[int]  # response tokens, the stop token included when present
    truncated: bool  # no stop token within max_new_tokens

    @property
    def length(self) -> int:
        return len(self.token_ids)


@dataclass
class SamplingParams:
    n: int = 8
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 96


class HFGenerator:
    """Batched sampling with ``model.generate`` (left padding, ``n`` samples per prompt)."""

    def __init__(self, model, tokenizer, prompts_per_batch: int = 64, progress: bool = True):
        self.model = model
        self.tok = tokenizer
        self.prompts_per_batch = prompts_per_batch
        self.progress = progress
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))

    def finish(self, ids: list[int], pad: int) -> Completion:
        """One sampled sequence cut after its first stop token (or stripped of padding: truncated)."""
        stop = next((j for j, t in enumerate(ids) if t in self.stop_ids), None)
        if stop is not None:
            ids, truncated = ids[: stop + 1], False
        else:
            ids, truncated = [t for t in ids if t != pad], True
        text = self.tok.decode([t for t in ids if t not in self.stop_ids], skip_special_tokens=False)
        return Completion(text=text, token_ids=ids, truncated=truncated)

    @torch.no_grad()
    def generate(self, prompts: list[str], params: SamplingParams, desc: str = "sampling") -> list[list[Completion]]:
        """``n`` completions for each prompt, in prompt order."""
        tok, model = self.tok, self.model
        tok.padding_side = "left"
        was_training = model.training
        model.eval()
        pad = tok.pad_token_id if tok.pad_token_id is not None else self.stop_ids[0]
        # batch prompts of similar length together to waste little on padding
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[list[Completion]] = [[] for _ in prompts]
        batches = [order[i : i + self.prompts_per_batch] for i in range(0, len(order), self.prompts_per_batch)]
        for idx in tqdm(batches, desc=desc, disable=not self.progress, mininterval=2):
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            out = model.generate(
                **enc,
                do_sample=params.temperature > 0,
                temperature=params.temperature if params.temperature > 0 else None,
                top_p=params.top_p if params.temperature > 0 else None,
                top_k=0,
                max_new_tokens=params.max_new_tokens,
                num_return_sequences=params.n,
                pad_token_id=pad,
                eos_token_id=self.stop_ids,
                use_cache=True,
            )
            new = out[:, enc["input_ids"].shape[1] :].tolist()
            for j, ids in enumerate(new):
                results[idx[j // params.n]].append(self.finish(ids, pad))
        model.train(was_training)
        return results


class VLLMGenerator:
    """Rollouts with vLLM, for GPU users (``rollout.backend=vllm``).

    NOT TESTED HERE: this machine has no GPU and vLLM is not installed; the class is written against
    vLLM's offline ``LLM`` API. The policy's weights are pushed into the engine before every
    rollout (``load_weights``), as TRL's colocate mode does; check the attribute path against your
    vLLM version.
    """

    def __init__(self, model, tokenizer, model_path: str, gpu_memory_utilization: float = 0.4, dtype: str = "auto"):
        try:
            from vllm import LLM
        except ImportError as e:
            raise RuntimeError(
                "rollout.backend=vllm needs the vllm package on a CUDA machine (pip install vllm); "
                "it is not installed here — use rollout.backend=hf"
            ) from e
        self.model, self.tok = model, tokenizer
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))
        self.llm = LLM(model=model_path, gpu_memory_utilization=gpu_memory_utilization, dtype=dtype,
                       enable_prefix_caching=True)

    def _sync_weights(self) -> None:
        engine_model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        engine_model.load_weights(((k, v.detach()) for k, v in self.model.state_dict().items()))

    def generate(self, prompts: list[str], params: SamplingParams, desc: str = "sampling") -> list[list[Completion]]:
        from vllm import SamplingParams as VLLMSampling

        self._sync_weights()
        sp = VLLMSampling(n=params.n, temperature=params.temperature, top_p=params.top_p,
                          max_tokens=params.max_new_tokens, stop_token_ids=self.stop_ids)
        outputs = self.llm.generate(prompts, sp, use_tqdm=True)
        results = []
        for out in outputs:
            group = []
            for o in out.outputs:
                ids = list(o.token_ids)
                stopped = o.finish_reason == "stop"
                if stopped and (not ids or ids[-1] not in self.stop_ids):
                    ids.append(o.stop_reason if isinstance(o.stop_reason, int) else self.stop_ids[0])
                group.append(Completion(text=o.text, token_ids=ids, truncated=not stopped))
            results.append(group)
        return results


def make_generator(rollout_cfg, model, tokenizer, model_path: str, progress: bool = True):
    """The configured rollout backend behind one interface: ``generate(prompts, params)``."""
    if rollout_cfg.backend == "vllm":
        return VLLMGenerator(model, tokenizer, model_path, rollout_cfg.vllm_gpu_memory_utilization,
                             rollout_cfg.vllm_dtype)
    return HFGenerator(model, tokenizer, prompts_per_batch=rollout_cfg.prompts_per_batch, progress=progress)
