"""GRPO stages on the smoke world: a run end to end, and an exact resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ATTEMPT, kill_after_checkpoint, run_stage
from safetensors.torch import load_file

# The smoke policy writes near-random text that the default rewards score alike: zero advantages, no
# update, and a resume test that could not fail. The tags its random tokens happen to include vary
# from one completion to the next (repeated words did not: random tokens rarely form the same word).
VARIED = ["++reasoning_rl.rewards.tag_count=1.0"]
# the smoke settings otherwise: validation checks and sample tables every 2 steps
LONG = ["reasoning_rl.max_steps=40", "reasoning_rl.ckpt_every=4", *VARIED]


def grpo_args(world, out):
    return [f"results_dir={world}", f"io.data_dir={world}/data", f"io.out_dir={out}",
            f"io.init_model={world}/cold_start_sft/model", f"hydra.run.dir={out}"]


def test_reasoning_rl_smoke_logs_curves_and_exports(smoke_world, tmp_path):
    out = tmp_path / "rl"
    run_stage("reasoning_rl", *grpo_args(smoke_world, out))
    done = json.loads((out / "done.json").read_text())
    assert done["steps"] == 4 and done["validation_pass@1"] is not None
    assert (out / "model" / "model.safetensors").is_file() and (out / "curves.png").stat().st_size > 1000
    from mlflow.tracking import MlflowClient

    run = MlflowClient().get_run(done["run_id"])
    for key in ("reward", "reward_std", "rewards/accuracy/mean", "frac_reward_zero_std", "completions/mean_length",
                "completions/clipped_ratio", "kl", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean",
                "learning_rate", "timing/gen", "timing/ref", "timing/update", "tokens_per_s"):
        assert key in run.data.metrics, key
    assert any(k.startswith("val/pass") for k in run.data.metrics)


def test_r1_zero_samples_its_rollouts_on_the_r1_zero_template(smoke_world, tmp_path):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "zero"
    run_stage("r1_zero", f"results_dir={smoke_world}", f"io.data_dir={smoke_world}/data", f"io.out_dir={out}",
              f"hydra.run.dir={out}")  # its starting model by default: the base (the DAG's edge)
    done = json.loads((out / "done.json").read_text())
    assert done["steps"] == 4
    client = MlflowClient()
    table = json.loads(Path(client.download_artifacts(done["run_id"], "samples/step_00001.json", str(tmp_path)))
                       .read_text())
    prompts = [row[table["columns"].index("prompt")] for row in table["data"]]
    assert prompts and all(p.startswith("A conversation between User and Assistant.") and p.endswith("<think>")
                           for p in prompts)
    questions = {json.loads(line)["question"] for line in (smoke_world / "data" / "train.jsonl").open()}
    assert all(any(f"User: {q}. Assistant:" in p for q in questions) for p in prompts)


def learned(history: list[dict]) -> list[dict]:
    """A GRPO history without its timings (which differ from run to run)."""
    return [{k: v for k, v in row.items() if not k.startswith("timing/") and "per_s" not in k} for row in history]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["reasoning_rl.async_rollout=true"]], ids=["on-policy", "one step off-policy"])
def test_killed_grpo_stage_resumes_exactly(smoke_world, tmp_path, mode):
    """With its periodic validation checks and sample tables on, a GRPO stage killed after a checkpoint
    resumes to the uninterrupted run's weights and logs the same numbers at every step, into the
    same MLflow run; one step off-policy too (the rollout sampled ahead is in the checkpoint)."""
    from mlflow.tracking import MlflowClient

    ref, out = tmp_path / "uninterrupted", tmp_path / "killed"
    args = [*LONG, *mode]
    run_stage("reasoning_rl", *grpo_args(smoke_world, ref), *args)
    kill_after_checkpoint("reasoning_rl", out, *grpo_args(smoke_world, out), *args)
    killed_run = (out / ATTEMPT / "ckpt" / "run_id").read_text()
    rerun = run_stage("reasoning_rl", *grpo_args(smoke_world, out), *args)
    assert "resuming from" in rerun.stdout + rerun.stderr
    done, ref_done = (json.loads((d / "done.json").read_text()) for d in (out, ref))
    assert done["steps"] == 40 and done["run_id"] == killed_run
    history, ref_history = (json.loads((d / "history.json").read_text()) for d in (out, ref))
    assert learned(history) == learned(ref_history)
    assert [row["step"] for row in history if "loss" in row] == list(range(1, 41))
    assert sum("val/pass@1" in row for row in history) > 10, "the validation checks ran"
    client = MlflowClient()
    for key in ("reward", "kl", "val/pass_at_1"):  # (MLflow's spelling of val/pass@1)
        curves = [{m.step: m.value for m in client.get_metric_history(d["run_id"], key)} for d in (done, ref_done)]
        assert curves[0] == curves[1] and len(curves[0]) >= 10, key
    a, b = load_file(ref / "model" / "model.safetensors"), load_file(out / "model" / "model.safetensors")
    start = load_file(smoke_world / "cold_start_sft" / "model" / "model.safetensors")
    assert max((a[k] - start[k]).abs().max().item() for k in a) > 1e-4, "the policy moved"
    for name in a:
        assert (a[name] - b[name]).abs().max().item() < 1e-5, f"{name} differs after resume"
