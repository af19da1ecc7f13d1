"""Sampling completions: Hugging Face ``generate`` with a KV cache, sequences stopping at EOS.

Used by evaluation (k samples per prompt) and, later, by GRPO rollouts and rejection sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm


@dataclass
class Completion:
    text: str  # decoded response, EOS excluded
    token_ids: list[int]  # response tokens, EOS included when present
    truncated: bool  # no EOS within max_new_tokens

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

    @torch.no_grad()
    def generate(self, prompts: list[str], params: SamplingParams, desc: str = "sampling") -> list[list[Completion]]:
        """``n`` completions for each prompt, in prompt order."""
        tok, model = self.tok, self.model
        tok.padding_side = "left"
        was_training = model.training
        model.eval()
        eos = tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
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
                eos_token_id=eos,
                use_cache=True,
            )
            new = out[:, enc["input_ids"].shape[1] :].tolist()
            for j, ids in enumerate(new):
                if eos in ids:
                    ids = ids[: ids.index(eos) + 1]
                    truncated = False
                else:
                    ids = [t for t in ids if t != pad] if pad != eos else ids
                    truncated = True
                text = tok.decode([t for t in ids if t != eos], skip_special_tokens=False)
                results[idx[j // params.n]].append(Completion(text=text, token_ids=ids, truncated=truncated))
        model.train(was_training)
        return results
