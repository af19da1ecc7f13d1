"""Training stages on two processes through their real entry (``python -m stages.<x>
trainer.devices=2 trainer.strategy=ddp|fsdp2``: CPU, gloo): the weights of one process, one MLflow
run, one export, lineage, and an exact resume after a kill, for DDP and for FSDP2 (Lightning's
ModelParallelStrategy; r1flow/train/sharding.py)."""

from __future__ import annotations

import json
import time

import pytest
import torch
from conftest import ATTEMPT, kill_after_checkpoint, run_stage, upstream
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file
from test_grpo_stage import VARIED
from transformers import AutoModelForCausalLM

STRATEGIES = ["ddp", "fsdp2"]


def two(strategy: str) -> list[str]:
    return ["trainer.devices=2", f"trainer.strategy={strategy}"]


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


def curve(run_id: str, key: str) -> dict[int, float]:
    """Step -> value of a run's metric (a step logged twice, before a kill and after the resume, has
    its last value)."""
    return {m.step: m.value for m in sorted(MlflowClient().get_metric_history(run_id, key), key=lambda m: m.timestamp)}


SFT = ["cold_start_sft.batch_size=4", "cold_start_sft.max_steps=6", "cold_start_sft.optim.lr=1e-3",
       "cold_start_sft.optim.warmup_steps=0"]


def sft_edges(world) -> list[str]:
    return [f"io.init_model={world}/pretrain/model", upstream(data=f"{world}/data", pretrain=f"{world}/pretrain")]


@pytest.fixture(scope="module")
def one_process_sft(smoke_world, tmp_path_factory):
    """Cold-start SFT in one process with batches of 4 rows: the reference of the 2-process runs."""
    out = tmp_path_factory.mktemp("sft_one")
    run_stage("cold_start_sft", *common(smoke_world, out), *SFT, *sft_edges(smoke_world))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sft_on_two_processes_with_half_batches_leaves_the_weights_of_one_process(strategy, one_process_sft,
                                                                                   smoke_world, tmp_path):
    """The batch size is global: 2 ranks × 2 rows make the step 1 process makes with 4 rows. The loss
    is the mean over the global batch's tokens (rows have different lengths), so the two runs
    differ only by the order of float sums: tolerance 1e-5 on every weight after 6 AdamW steps. With
    FSDP2 each rank holds half of the weights and AdamW states; the export gathers them."""
    out = tmp_path / strategy
    t0 = time.time()
    run_stage("cold_start_sft", *common(smoke_world, out), *SFT, *sft_edges(smoke_world), *two(strategy))
    assert max_difference(one_process_sft, out) < 1e-5
    base = load_file(smoke_world / "pretrain" / "model" / "model.safetensors")
    trained = load_file(out / "model" / "model.safetensors")
    assert base.keys() == trained.keys(), "the same tensors as the base's export (a tied head saved once)"
    reloaded = AutoModelForCausalLM.from_pretrained(out / "model").state_dict()
    assert all(torch.equal(reloaded[k], trained[k]) for k in trained), "from_pretrained reads the gathered weights"
    assert max((base[k] - trained[k]).abs().max().item() for k in base) > 3e-3, "the steps moved the weights"
    done = json.loads((out / "done.json").read_text())
    assert done["steps"] == 6
    run = MlflowClient().get_run(done["run_id"])
    pretrain_run = json.loads((smoke_world / "pretrain" / "run.json").read_text())["run_id"]
    assert pretrain_run in run.data.tags["r1.upstream_run_ids"].split(","), "lineage to the base's run"
    assert stage_runs(done["run_id"], "cold_start_sft", t0) == [done["run_id"]], "one run, from rank 0"


def stage_edges(world, stage: str) -> list[str]:
    return {"pretrain": [upstream(data=f"{world}/data")],
            "cold_start_sft": sft_edges(world),
            "helpfulness_rm": [f"io.init_model={world}/pretrain/model",
                               upstream(data=f"{world}/data", pretrain=f"{world}/pretrain")],
            "reasoning_rl": [f"io.init_model={world}/cold_start_sft/model",
                             upstream(data=f"{world}/data", cold_start_sft=f"{world}/cold_start_sft")]}[stage]


def assert_one_exported_run(stage: str, out, since: float, steps: int) -> dict:
    """The stage's completion: its steps, one MLflow run (rank 0's), its export, no checkpoints left."""
    done = json.loads((out / "done.json").read_text())
    assert done["steps"] == steps
    assert not (out / ATTEMPT).exists(), "the attempt (its checkpoints too) is gone once published"
    if not stage.endswith("_rm"):  # a causal LM any standard client loads
        model = AutoModelForCausalLM.from_pretrained(out / "model")
        assert sum(p.numel() for p in model.parameters()) > 0
    assert stage_runs(done["run_id"], stage, since) == [done["run_id"]], "one run, from rank 0"
    assert MlflowClient().get_run(done["run_id"]).data.params["trainer.devices"] == "2"
    return done


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "strategy"), [("reasoning_rl", "ddp"), ("helpfulness_rm", "fsdp2")])
def test_training_stage_runs_on_two_processes(stage, strategy, smoke_world, tmp_path):
    out, t0 = tmp_path / stage, time.time()
    run_stage(stage, *common(smoke_world, out), *stage_edges(smoke_world, stage), *two(strategy))
    assert_one_exported_run(stage, out, t0, steps={"helpfulness_rm": 4, "reasoning_rl": 4}[stage])


# long enough that a kill soon after the first checkpoint lands mid-run, and that the resumed part
# crosses epochs (SFT: 14 batches of 4 rows per epoch; reward model: 8 batches of 4 pairs)
RESUMED_STEPS, RESUMED_CKPT_EVERY = 32, 5


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["pretrain", "cold_start_sft", "helpfulness_rm"])
def test_killed_two_process_training_stage_resumes_exactly(stage, smoke_world, tmp_path):
    """SIGKILLed after a checkpoint, the 2-process stage resumes where it was (the loader's epoch and
    position, the random generators) and ends with the uninterrupted run's weights and final metrics:
    bit for bit, as both runs sum the same floats in the same order."""
    args = [*stage_edges(smoke_world, stage), *two("ddp"), f"{stage}.max_steps={RESUMED_STEPS}",
            f"{stage}.ckpt_every={RESUMED_CKPT_EVERY}"]
    ref, out = tmp_path / "uninterrupted", tmp_path / "killed"
    run_stage(stage, *common(smoke_world, ref), *args)
    t0 = time.time()
    kill_after_checkpoint(stage, out, *common(smoke_world, out), *args)
    rerun = run_stage(stage, *common(smoke_world, out), *args)
    assert "resuming from" in rerun.stdout + rerun.stderr
    assert "not resumable" not in rerun.stdout + rerun.stderr, "Lightning saw the loader's position"
    # one MLflow run for both attempts: the killed one's, reopened and finished
    done, ref_done = assert_one_exported_run(stage, out, t0, steps=RESUMED_STEPS), json.loads((ref / "done.json").read_text())
    assert max_difference(ref, out) == 0.0
    learned = lambda m: {k: v for k, v in m.items() if not k.endswith("_per_s")}  # noqa: E731 (speeds differ)
    assert learned(done["final_metrics"]) == learned(ref_done["final_metrics"])
    assert any(k.startswith("val") for k in done["final_metrics"]), "the validation loss too"
    assert done.get("heldout") == ref_done.get("heldout")
    # a step's checkpoint is written once the step has logged everything (StepCheckpoint): the
    # curves are whole, although Lightning does not repeat the checkpoint's step after the resume
    for key in ("train/loss", next(k for k in done["final_metrics"] if k.startswith("val"))):
        assert curve(done["run_id"], key) == curve(ref_done["run_id"], key), key


def grpo_args(world, strategy: str) -> list[str]:
    return [f"io.init_model={world}/cold_start_sft/model", "reasoning_rl.max_steps=16", "reasoning_rl.ckpt_every=4",
            "reasoning_rl.eval_every=0", "reasoning_rl.table_every=0", *VARIED,
            upstream(data=f"{world}/data", cold_start_sft=f"{world}/cold_start_sft"), *two(strategy)]


@pytest.fixture(scope="module")
def uninterrupted_grpo(smoke_world, tmp_path_factory):
    """strategy -> the output of an uninterrupted 2-process GRPO run with it (run on first use)."""
    runs = {}

    def run(strategy: str):
        if strategy not in runs:
            runs[strategy] = tmp_path_factory.mktemp(f"grpo_{strategy}")
            run_stage("reasoning_rl", *common(smoke_world, runs[strategy]), *grpo_args(smoke_world, strategy))
        return runs[strategy]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_killed_two_process_grpo_stage_resumes_exactly(strategy, uninterrupted_grpo, smoke_world, tmp_path):
    """Killed after a checkpoint, the run resumes to the uninterrupted run's weights. With FSDP2 the
    sampling gathers the sharded policy whole on each rank, and the updates are DDP's."""
    args, ref, out = grpo_args(smoke_world, strategy), uninterrupted_grpo(strategy), tmp_path / "killed"
    kill_after_checkpoint("reasoning_rl", out, *common(smoke_world, out), *args)
    rerun = run_stage("reasoning_rl", *common(smoke_world, out), *args)
    assert "resuming from" in rerun.stdout + rerun.stderr
    assert json.loads((out / "done.json").read_text())["steps"] == 16
    assert max_difference(ref, out) < 1e-5
    assert max_difference(ref, smoke_world / "cold_start_sft") > 1e-4, "the policy moved"
    if strategy == "fsdp2":
        assert max_difference(uninterrupted_grpo("ddp"), ref) < 1e-5, "sharding changes no rollout and no update"
