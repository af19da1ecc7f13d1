"""GRPO, as R1-Zero, reasoning RL and all-scenario RL use it, and where its samples come from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r1flow.config.knobs import Backend, LossType, ScaleRewards, Template, knob
from r1flow.config.training import OptimConfig


@dataclass
class RolloutConfig:
    """Where completions are sampled: a transformers model (hf) or vLLM (vllm)."""

    backend: Backend = knob(Backend.hf, "hf: a transformers model with a KV cache; vllm: vLLM's engine.")
    prompts_per_batch: int = knob(64, "hf: prompts per batch.")
    hf_drop_finished: bool = knob(True, "hf: a decode loop that drops finished samples from the batch (each "
                                  "prompt prefilled once for its n samples); false: transformers' generate, "
                                  "which computes every sample until the batch's longest ends "
                                  "(r1flow/sampling/rollout.py, bench/rollout_vllm_vs_hf.py).")
    vllm_gpu_memory_utilization: float = knob(0.4, "vllm: share of the device's memory the engine may take "
                                              "(on CPU: of host RAM); unused when vllm_kv_cache_gb is set.")
    vllm_kv_cache_gb: float = knob(0.0, "vllm: KV-cache size in GiB (0: from vllm_gpu_memory_utilization). "
                                   "CPU runs set it: a share of host RAM is far more than they need.")
    vllm_dtype: str = knob("auto", "vllm: the engine's dtype; auto: the policy's (float32 on CPU, where "
                           "bfloat16 matmuls are slow).")
    vllm_max_num_seqs: int = knob(256, "vllm: sequences the engine batches at once (>= prompts x n fills a "
                                  "rollout in one pass).")
    vllm_enforce_eager: bool = knob(False, "vllm: no CUDA-graph capture or compilation (always on CPU, where "
                                    "compiling costs ~50 s per engine).")
    vllm_sleep: bool = knob(False, "vllm (GPUs): the engine sleeps between rollouts (weights offloaded, KV "
                            "cache freed) so training gets the memory.")


@dataclass
class GRPOConfig:
    """GRPO (DeepSeekMath; §2.2.1). One *step* is one optimizer step. A rollout of
    ``generation_batch_size`` completions (``generation_batch_size / group_size`` prompts x
    ``group_size``) is sampled every ``mu * generation_batch_size / mini_batch_size`` steps and
    reused for ``mu`` passes of mini-batches of ``mini_batch_size`` completions, pi_old's log-probs
    cached. The defaults are the paper's; experiments override what their world needs."""

    optim: OptimConfig = knob(OptimConfig(lr=3e-6, min_lr_ratio=1.0, warmup_steps=0), "Optimizer.",
                              paper="lr 3e-6, constant (v2)")
    max_steps: int = knob(1700, "Optimizer steps.", paper="R1-Zero 10,400; all-scenario RL 1,700 (v2)")
    generation_batch_size: int = knob(512, "Completions per rollout (a multiple of group_size).",
                                      paper="32 prompts x 16 = 512 (v2)")
    group_size: int = knob(16, "G: completions per prompt.", paper="16 (v2)")
    mini_batch_size: int = knob(512, "Completions per optimizer step (divides generation_batch_size).",
                                paper="8,192 outputs in 16 mini-batches (v2)")
    mu: int = knob(1, "Inner passes over one rollout (pi_old fixed).", paper="1 (v2)")
    beta: float = knob(0.001, "KL weight (k3 estimator, in the loss); 0 drops the reference model.",
                       paper="0.001 (v2); DeepSeekMath 0.04")
    eps_low: float = knob(10.0, "Clip epsilon below 1 of the ratio.", paper="10, large on purpose (v2); PPO 0.2")
    eps_high: float = knob(10.0, "Clip epsilon above 1 of the ratio (DAPO clip-higher: 0.28).", paper="10 (v2)")
    scale_rewards: ScaleRewards = knob(ScaleRewards.group, "Advantage normalisation: group (GRPO), batch, none.")
    loss_type: LossType = knob(LossType.grpo, "Loss aggregation: grpo, bnpo, dr_grpo, dapo.")
    mask_truncated: bool = knob(False, "Drop completions without an end-of-turn from the loss (DAPO).")
    dynamic_sampling: bool = knob(False, "DAPO: drop groups whose rewards are all equal, refill the batch.")
    max_refill_rounds: int = knob(3, "Dynamic sampling: most extra sampling rounds per rollout.")
    ref_reset_every: int = knob(400, "Steps between resets of the reference model to the policy (0: never).",
                                paper="400 (v2)")
    temperature: float = knob(1.0, "Sampling temperature of the rollouts (also divides the logits of the loss).",
                              paper="1.0 (v2)")
    top_p: float = knob(1.0, "Nucleus sampling of the rollouts.")
    max_new_tokens: int = knob(32768, "Longest completion.", paper="32,768 (v2)")
    template: Template = knob(Template.chat, "Prompt template: the chat template, or R1-Zero's (Table 1).")
    rewards: dict[str, float] = knob({"accuracy": 1.0, "format": 1.0, "language": 1.0},
                                     "Reward name -> weight (r1flow/sampling/rewards.py); an experiment's dict "
                                     "merges into this one, weight 0 switches a reward off.",
                                     paper="accuracy + format (§2.2.2) + language consistency (§2.3.2)")
    reward_kwargs: dict[str, Any] = knob({}, "Reward name -> keyword arguments, e.g. {overlong: {max_length: 96}}.")
    general_prompt_frac: float = knob(0.0, "Share of a rollout's prompts that are general ones (non-reasoning "
                                      "tasks and requests for a secret), in the last general_last_steps.")
    general_last_steps: int = knob(0, "Steps at the end in which general prompts are sampled.",
                                   paper="the last 400 of 1,700 steps (v2)")
    general_rewards: dict[str, float] = knob({}, "Rewards of general prompts, e.g. {helpfulness_rm: 1, format: 1}; "
                                             "merges like rewards. A *_rm reward is scored by that reward-model stage.")
    logprob_chunk_rows: int = knob(16, "Rows per vocabulary projection when computing log-probs (bounds memory).")
    shared_prompt_forward: bool = knob(True, "Log-prob passes (training, pi_old, reference) run each group's prompt "
                                       "once and its G completions on the prompt's KV cache: the same log-probs and "
                                       "gradients, the prompt's tokens at 1/G of the cost (bench/grpo_vs_trl.py).")
    length_buckets: int = knob(4, "Log-prob passes run the rows, sorted by completion length, in this many parts of "
                               "equal row count, each as wide as its longest completion (1: every row as wide as "
                               "the batch's longest): the same log-probs and gradients, less padding computed "
                               "(bench/grpo_vs_trl.py).")
    async_rollout: bool = knob(False, "One step off-policy: a sampler process samples the next rollout with the "
                               "weights of one update ago while the trainer updates on the current one; the loss's "
                               "ratio is taken against the sampler's log-probs (r1flow/train/async_rollout.py). hf "
                               "backend with hf_drop_finished, one process, no dynamic sampling.")
    async_sampler_threads: int = knob(1, "async_rollout: torch threads of the sampler process, taken from "
                                      "trainer.num_threads; the trainer keeps at least one (so a 1-thread job "
                                      "runs 2).")
    eval_every: int = knob(50, "Steps between pass@1 checks on validation prompts (0: never); also the sweep "
                                   "objective.")
    eval_prompts: int = knob(128, "Validation prompts of each check.")
    eval_k: int = knob(4, "Samples per prompt of each check.")
    table_every: int = knob(50, "Steps between sample-completion tables (MLflow artifacts).")
    ckpt_every: int = knob(50, "Steps between resumable checkpoints.")
    rollout: RolloutConfig = knob(RolloutConfig(), "Sampling backend.")
