"""Training stages on two processes through their real entry (``python -m stages.<x>
trainer.devices=2 trainer.strategy=ddp``: CPU, gloo): the weights of one process, one MLflow run,
one export, lineage, and an exact resume after a kill."""

from __future__ import annotations

import json
import time

import pytest
from conftest import kill_after_checkpoint, run_stage, upstream
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file
from test_grpo_stage import VARIED
from transformers import AutoModelForCausalLM

DDP = ["trainer.devices=2", "trainer.strategy=ddp"]


def common(world, out) -> list[str]:
    return [f"results_dir={world}", f"io.data_dir={world}/data", f"io.out_dir={out}", f"hydra.run.dir={out}"]


def max_difference(a_dir, b_dir) -> float:
    a, b = load_file(a_dir / "model" / "model.safetensors"), load_file(b_dir / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def stage_runs(run_id: str, stage: str, since: float) -> list[str]:
    """The ids of the runs of ``stage`` started since ``since`` (time.time()) in the experiment of
    ``run_id``: one per stage run, not one per rank."""
    client = MlflowClient()
    exp = client.get_run(run_id).info.experiment_id
    runs = client.search_runs([exp], f"tags.`r1.stage` = '{stage}' and attributes.start_time >= {int(since * 1000)}")
    return [r.info.run_id for r in runs]


@pytest.mark.slow
def test_sft_on_two_processes_with_half_batches_leaves_the_weights_of_one_process(smoke_world, tmp_path):
    """The batch size is global: 2 ranks × 2 rows make the step 1 process makes with 4 rows. The loss
    is the mean over the global batch's tokens (rows have different lengths), so the two runs
    differ only by the order of float sums: tolerance 1e-5 on every weight after 6 AdamW steps."""
    args = ["cold_start_sft.batch_size=4", "cold_start_sft.max_steps=6", "cold_start_sft.optim.lr=1e-3",
            "cold_start_sft.optim.warmup_steps=0", f"io.init_model={smoke_world}/pretrain/model",
            upstream(data=f"{smoke_world}/data", pretrain=f"{smoke_world}/pretrain")]
    one, two = tmp_path / "one", tmp_path / "two"
    run_stage("cold_start_sft", *common(smoke_world, one), *args)
    t0 = time.time()
    run_stage("cold_start_sft", *common(smoke_world, two), *args, *DDP)
    assert max_difference(one, two) < 1e-5
    base = load_file(smoke_world / "pretrain" / "model" / "model.safetensors")
    trained = load_file(two / "model" / "model.safetensors")
    assert max((base[k] - trained[k]).abs().max().item() for k in base) > 3e-3, "the steps moved the weights"
    done = json.loads((two / "done.json").read_text())
    assert done["steps"] == 6
    run = MlflowClient().get_run(done["run_id"])
    pretrain_run = json.loads((smoke_world / "pretrain" / "run.json").read_text())["run_id"]
    assert pretrain_run in run.data.tags["r1.upstream_run_ids"].split(","), "lineage to the base's run"
    assert stage_runs(done["run_id"], "cold_start_sft", t0) == [done["run_id"]], "one run, from rank 0"


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["pretrain", "helpfulness_rm", "reasoning_rl"])
def test_training_stage_runs_on_two_processes(stage, smoke_world, tmp_path):
    out = tmp_path / stage
    edges = {"pretrain": [upstream(data=f"{smoke_world}/data")],
             "helpfulness_rm": [f"io.init_model={smoke_world}/pretrain/model",
                                upstream(data=f"{smoke_world}/data", pretrain=f"{smoke_world}/pretrain")],
             "reasoning_rl": [f"io.init_model={smoke_world}/cold_start_sft/model",
                              upstream(data=f"{smoke_world}/data", cold_start_sft=f"{smoke_world}/cold_start_sft")]}
    t0 = time.time()
    run_stage(stage, *common(smoke_world, out), *edges[stage], *DDP)
    done = json.loads((out / "done.json").read_text())
    assert done["steps"] == {"pretrain": 6, "helpfulness_rm": 4, "reasoning_rl": 4}[stage]
    assert not (out / "ckpt").exists(), "checkpoints dropped after the export"
    if stage != "helpfulness_rm":  # a causal LM any standard client loads
        model = AutoModelForCausalLM.from_pretrained(out / "model")
        assert sum(p.numel() for p in model.parameters()) > 0
    assert stage_runs(done["run_id"], stage, t0) == [done["run_id"]], "one run, from rank 0"
    assert MlflowClient().get_run(done["run_id"]).data.params["trainer.devices"] == "2"


@pytest.mark.slow
def test_killed_two_process_grpo_stage_resumes_exactly(smoke_world, tmp_path):
    args = [f"io.init_model={smoke_world}/cold_start_sft/model", "reasoning_rl.max_steps=16",
            "reasoning_rl.ckpt_every=4", "reasoning_rl.eval_every=0", "reasoning_rl.table_every=0", *VARIED,
            upstream(data=f"{smoke_world}/data", cold_start_sft=f"{smoke_world}/cold_start_sft"), *DDP]
    ref, out = tmp_path / "uninterrupted", tmp_path / "killed"
    run_stage("reasoning_rl", *common(smoke_world, ref), *args)
    kill_after_checkpoint("reasoning_rl", out, *common(smoke_world, out), *args)
    rerun = run_stage("reasoning_rl", *common(smoke_world, out), *args)
    assert "resuming from" in rerun.stdout + rerun.stderr
    assert json.loads((out / "done.json").read_text())["steps"] == 16
    assert max_difference(ref, out) < 1e-5
    assert max_difference(ref, smoke_world / "cold_start_sft") > 1e-4, "the policy moved"
