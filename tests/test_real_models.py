"""Real checkpoints and real data: a Hugging Face-shaped checkpoint (byte-level BPE, ChatML whose
end-of-turn is not EOS, tests/hf_world.py) through the shared code, a reasoning-gym family our solver
cannot script, and the whole hf_smoke DAG with its lineage down to the user's file."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, copy_project, planned_jobs, run_stage, upstream
from transformers import AutoTokenizer

from r1flow.config import compose
from r1flow.harness.files import file_digest, read_jsonl
from r1flow.harness.models import inference_device, load_model, load_tokenizer
from r1flow.runners.sft import render_sft_rows
from r1flow.sampling.curation import sft_row
from r1flow.sampling.prompts import item_prompt, stop_token_ids, think_prefill, user_content
from r1flow.sampling.rollout import HFGenerator, SamplingParams

ITEM = {"id": "q1", "family": "gsm8k", "question": "Tom has 3 boxes with 4 apples each. How many apples?",
        "answer": "12", "metadata": {}, "verifier": "math", "answer_format": "boxed"}
RESPONSE = "<think>\n3*4=12\n</think>\nThe answer is \\boxed{12}."


def test_think_prefill_is_detected_both_ways(hf_world):
    assert think_prefill(load_tokenizer(hf_world["base"])) == ""
    assert think_prefill(load_tokenizer(hf_world["base_prefill"])) == "<think>\n"


def test_a_template_without_a_generation_prompt_is_a_config_error(hf_world):
    tok = load_tokenizer(hf_world["base"])
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ValueError, match="config error: model: .*adds no generation prompt"):
        think_prefill(tok)


def test_the_project_loader_and_autotokenizer_give_the_same_ids(hf_world):
    ours, auto = load_tokenizer(hf_world["base"]), AutoTokenizer.from_pretrained(hf_world["base"])
    for text in (item_prompt(ours, ITEM), RESPONSE, "1,234 + 5 = 1,239 <<1234+5=1239>>"):
        assert ours(text, add_special_tokens=False)["input_ids"] == auto(text, add_special_tokens=False)["input_ids"]


def test_sampling_stops_at_the_end_of_turn_that_sft_teaches(hf_world):
    """ChatML's <|im_end|> ends a turn, while the checkpoint's EOS is <|endoftext|>: sampling stops at
    the turn's end (and leaves it out of the text); stopping at EOS alone runs on past it."""
    tok = load_tokenizer(hf_world["base"])
    model = load_model(hf_world["base"], compose(["experiment=hf_smoke"]).model)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end != tok.eos_token_id and set(stop_token_ids(tok, model.generation_config)) == {im_end, tok.eos_token_id}
    gen, greedy = HFGenerator(model, tok, progress=False), SamplingParams(n=1, temperature=0.0, max_new_tokens=96)
    stopped = gen.generate([item_prompt(tok, ITEM)], greedy)[0][0]
    assert not stopped.truncated and stopped.token_ids[-1] == im_end and "<|im_end|>" not in stopped.text
    gen.stop_ids = [tok.eos_token_id]  # what a generator that knows only EOS would do
    run_on = gen.generate([item_prompt(tok, ITEM)], greedy)[0][0]
    assert run_on.length > stopped.length and run_on.token_ids[: stopped.length - 1] == stopped.token_ids[:-1]


@pytest.mark.parametrize("checkpoint", ["base", "base_prefill"])
def test_a_curated_sample_becomes_the_turn_the_policy_wrote(hf_world, checkpoint):
    """Whether or not the template pre-fills <think>, the SFT row made from a sampled response trains
    exactly that response, then the end of turn, after exactly the prompt the policy saw."""
    tok = load_tokenizer(hf_world[checkpoint])
    prefill = think_prefill(tok)
    sampled = RESPONSE.removeprefix(prefill)  # what the model generated after the prompt
    row = sft_row({"item": ITEM, "prompt_content": user_content(ITEM), "response": sampled}, prefill)
    rendered = render_sft_rows(tok, [row])[0]
    assert rendered["prompt"] == item_prompt(tok, ITEM)
    assert rendered["response"] == sampled + "<|im_end|>"
    assert row["messages"][1]["content"].count("<think>") == 1


def test_samplers_sit_on_the_trainers_accelerator():
    assert inference_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="config error: trainer.accelerator: gpu"):
            inference_device("gpu")


def test_a_reasoning_gym_family_without_a_solver_trains_and_evaluates(tmp_path, mlflow_uri):
    """gsm_symbolic has no flat expression: its items are split by question, graded by its own
    scorer, and have no scripted cold-start trace; with chain_sum beside it the stages run through."""
    res = tmp_path / "results"
    digits = "min_digits:1,max_digits:1"
    families = (f"data.families=[{{name:chain_sum,params:{{min_terms:3,max_terms:3,{digits}}},"
                f"hard_params:{{min_terms:4,max_terms:4,{digits}}}}},{{name:gsm_symbolic}}]")
    common = [f"results_dir={res}", f"io.data_dir={res}/data", families]

    def run(stage, init=None, **ups):
        args = [*common, f"io.out_dir={res}/{stage}", f"hydra.run.dir={res}/{stage}"]
        run_stage(stage, *args, *([f"io.init_model={res}/{init}/model"] if init else []),
                  upstream(data=f"{res}/data", **{k: f"{res}/{v}" for k, v in ups.items()}))

    run_stage("data", *common, f"io.out_dir={res}/data", f"hydra.run.dir={res}/data")
    held = read_jsonl(res / "data" / "heldout.jsonl")
    assert {r["family"] for r in held} == {"chain_sum", "gsm_symbolic"}
    cold = read_jsonl(res / "data" / "cold_start.jsonl")
    assert cold and all(r["family"] == "chain_sum" for r in cold)  # only the solver's family is scripted
    run("pretrain")
    run("cold_start_sft", "pretrain", pretrain="pretrain")
    run("reasoning_rl", "cold_start_sft", cold_start_sft="cold_start_sft")
    run_stage("evaluate", *common, f"io.out_dir={res}/eval", f"io.init_model={res}/reasoning_rl/model",
              "io.label=reasoning_rl", f"hydra.run.dir={res}/eval")
    metrics = json.loads((res / "eval" / "metrics.json").read_text())
    assert set(metrics["per_family"]) == {"chain_sum", "gsm_symbolic"}
    assert metrics["spec"]["verifiers"] == ["reasoning_gym"]


def test_the_readmes_own_model_and_data_experiment_plans_the_whole_dag(tmp_path):
    """The README's example experiment (a local checkpoint, a GSM8K-style JSONL file, general files,
    a checkpoint student) composes, validates and plans every stage down to the report."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Run on your own model and data", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    proj = copy_project(tmp_path / "proj")
    (proj / "conf" / "experiment" / "mine.yaml").write_text(example)
    jobs = planned_jobs(proj, experiment="mine")
    assert "pretrain" not in jobs and "student_pretrain" not in jobs
    assert {"data", "cold_start_sft", "reasoning_rl", "general_sft", "helpfulness_rm", "harmlessness_rm",
            "all_scenario_rl", "distill", "report"} <= set(jobs)
    # the checkpoints evaluated: base (on the chat template and on R1-Zero's), base_small, r1_zero,
    # cold_start_sft, reasoning_rl, general_sft, all_scenario_rl, student_small
    assert jobs["evaluate"] == 9


@pytest.mark.slow
def test_the_hf_smoke_dag_runs_from_a_checkpoint_on_files_down_to_the_report(hf_smoke_dag):
    res = hf_smoke_dag.res
    for key in ("data", "cold_start_sft", "reasoning_rl", "rejection_sampling", "general_sft", "helpfulness_rm",
                "harmlessness_rm", "all_scenario_rl", "distill_data", "students/small/distill", "report"):
        assert (res / key / "done.json").is_file(), key
    assert not (res / "pretrain").exists()  # the base is the checkpoint: no pretraining
    evaluated = {p.parent.name for p in (res / "eval").glob("*/metrics.json")}
    assert evaluated == {"base", "base_on_r1_zero", "base_small", "base_small_on_r1_zero", "r1_zero", "cold_start_sft",
                         "reasoning_rl", "general_sft", "all_scenario_rl", "student_small", "rl_only_small"}
    samples = read_jsonl(res / "eval" / "base" / "samples.jsonl")
    assert any(not s["truncated"] for s in samples) and not any("<|im_end|>" in s["response"] for s in samples)
    assert json.loads((res / "data" / "decontamination.json").read_text())["train_rows"] > 0
    claims = (res / "report" / "claims.md").read_text()
    assert "tiny world" not in claims and "arithmetic" not in claims


@pytest.mark.slow
def test_an_evaluation_run_again_by_its_command_writes_the_same_bytes(hf_smoke_dag, tmp_path):
    """Determinism where the metrics are not all zero: the DAG's evaluation of the base checkpoint
    (sampled at temperature 0.6, graded by math-verify), run again by the command Snakemake ran into
    another directory, writes byte-identical metrics and samples."""
    log = "\n".join(p.read_text() for p in sorted((hf_smoke_dag.proj / ".snakemake" / "log").glob("*.log")))
    line = next(x for x in log.splitlines() if "stages.evaluate" in x and "io.out_dir=results/hf_smoke/eval/base " in x)
    args = shlex.split(line.split("python ", 1)[1].split(" > ")[0])
    args = [f"{a.split('=')[0]}={tmp_path}" if a.startswith(("hydra.run.dir=", "io.out_dir=")) else a for a in args]
    proc = subprocess.run([sys.executable, *args], cwd=hf_smoke_dag.proj, capture_output=True, text=True,
                          env={**os.environ, **hf_smoke_dag.env()})
    assert proc.returncode == 0, proc.stderr[-3000:]
    dag_eval = hf_smoke_dag.res / "eval" / "base"
    assert json.loads((dag_eval / "metrics.json").read_text())["splits"]["heldout"]["pass@1"] > 0
    for name in ("metrics.json", "samples.jsonl"):
        assert (tmp_path / name).read_bytes() == (dag_eval / name).read_bytes(), name


@pytest.mark.slow
def test_hf_smoke_lineage_walks_from_the_distilled_student_to_the_users_file(hf_smoke_dag):
    proc = subprocess.run([sys.executable, "-m", "tracking.lineage", "models:/r1flow-hf_smoke@student-small"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, **hf_smoke_dag.env()})
    assert proc.returncode == 0, proc.stderr
    for stage in ("distill", "distill_data", "all_scenario_rl", "general_sft", "rejection_sampling", "reasoning_rl",
                  "cold_start_sft", "data"):
        assert f"{stage}  run=" in proc.stdout
    problems = hf_smoke_dag.world["problems"]
    assert f"hf_smoke/source/problems {file_digest(problems)}" in proc.stdout
