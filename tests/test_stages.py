"""Stage smoke tests (a few steps each on the smoke world) and bad input: clear error, non-zero
exit, no completion file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import ATTEMPT, kill_after_checkpoint, run_stage, upstream


def test_smoke_stages_produce_hf_checkpoints(smoke_world):
    for stage in ("pretrain", "cold_start_sft"):
        model = smoke_world / stage / "model"
        assert (model / "model.safetensors").is_file() and (model / "tokenizer_config.json").is_file()
        assert (model / "chat_template.jinja").is_file() or "chat_template" in (model / "tokenizer_config.json").read_text()
        done = json.loads((smoke_world / stage / "done.json").read_text())
        assert done["steps"] == 6
        record = json.loads((smoke_world / stage / "run.json").read_text())
        assert record["model_id"] and record["run_id"] == done["run_id"]
    manifest = json.loads((smoke_world / "data" / "manifest.json").read_text())
    assert set(manifest) >= {"train", "heldout", "hard", "cold_start", "pretrain_corpus"}
    assert all(len(v["digest"]) == 64 for v in manifest.values())


def test_tokens_pretraining_never_saw_leave_it_at_the_mean_embedding(smoke_world):
    """The chat template's markers are absent from a base's corpus: their embedding rows are the
    mean of the others' (so the cold start introduces them from an average token)."""
    from safetensors.torch import load_file

    from r1flow.harness.models import load_tokenizer

    done = json.loads((smoke_world / "pretrain" / "done.json").read_text())
    assert {"<|user|>", "<|assistant|>"} <= set(done["unseen_tokens"])
    tok = load_tokenizer(str(smoke_world / "pretrain" / "model"))
    emb = load_file(smoke_world / "pretrain" / "model" / "model.safetensors")["model.embed_tokens.weight"]
    unseen = tok.convert_tokens_to_ids(done["unseen_tokens"])
    seen = [i for i in range(emb.shape[0]) if i not in set(unseen)]
    mean = emb[seen].mean(dim=0)
    assert all(emb[i].allclose(mean, atol=1e-6) for i in unseen)
    assert not emb[seen[0]].allclose(mean, atol=1e-3)


def test_from_pretrained_path_loads_a_locally_saved_checkpoint(smoke_world):
    from r1flow.config import compose
    from r1flow.harness.models import load_model, load_tokenizer

    cfg = compose(["experiment=smoke", "model.init=pretrained", f"model.name_or_path={smoke_world}/pretrain/model"])
    tok = load_tokenizer(cfg.model.name_or_path)
    model = load_model(cfg.model.name_or_path, cfg.model)
    assert model.config.vocab_size == len(tok)
    # the exported tokenizer tokenizes exactly as the one the data stage built (not the arch's class)
    text = "State the final answer to the following arithmetic problem: 4 - 1 - 7 =\n<think>\n3 - 7 =\n-4"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids == load_tokenizer(str(smoke_world / "data" / "tokenizer"))(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == text


def evaluate_cold_start(world, out):
    run_stage("evaluate", f"results_dir={world}", f"io.data_dir={world}/data", f"io.out_dir={out}",
              f"io.init_model={world}/cold_start_sft/model", "io.label=cold_start_sft",
              f"hydra.run.dir={out}", upstream(cold_start_sft=f"{world}/cold_start_sft"),
              "evaluate.splits=[heldout,hard,general,safety]")  # as the Snakefile passes for general models


def test_evaluate_writes_metrics_with_spec_and_the_same_bytes_when_run_again(smoke_world, tmp_path):
    out, again = tmp_path / "eval", tmp_path / "again"
    evaluate_cold_start(smoke_world, out)
    m = json.loads((out / "metrics.json").read_text())
    for key in ("pass@1", "cons@k", "pass@k", "k", "format_rate", "mean_length", "pass@1_ci95", "per_family"):
        assert key in m
    assert m["k"] == 2 and m["spec"]["temperature"] == 0.6 and m["spec"]["top_p"] == 0.95
    assert set(m["splits"]) == {"heldout", "hard", "general", "safety"}
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * (8 + 8 + 8 + 8)  # k * (max_prompts of heldout, hard, general and safety)
    assert (out / "pass_at_k.png").stat().st_size > 1000
    # determinism: the same command again, byte for byte (sampled at temperature 0.6, not greedy)
    evaluate_cold_start(smoke_world, again)
    assert m["mean_length"] > 0 and len({r["response"] for r in rows}) > len(rows) // 4, "varied samples"
    for name in ("metrics.json", "samples.jsonl"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def outputs(out: Path) -> dict[str, bytes]:
    """Every published file of a stage's output directory (not Hydra's logs), by relative path."""
    return {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*"))
            if f.is_file() and not f.relative_to(out).parts[0].startswith((".", "cold_start_sft.log"))}


def test_a_failed_or_killed_rerun_keeps_the_good_outputs_and_the_next_resumes(smoke_world, tmp_path):
    """A stage's outputs change only when an attempt succeeds: a rerun that fails on a corrupt starting
    model, and one killed after a checkpoint, leave the earlier run's model, metrics and done.json
    byte for byte; the next rerun resumes from the killed attempt's checkpoint, publishes the same
    weights as the first run, and leaves no attempt directory behind."""
    out = tmp_path / "sft"
    common = [f"results_dir={smoke_world}", f"io.data_dir={smoke_world}/data", f"io.out_dir={out}",
              f"hydra.run.dir={out}", "cold_start_sft.max_steps=24", "cold_start_sft.ckpt_every=4"]
    init = f"io.init_model={smoke_world}/pretrain/model"
    run_stage("cold_start_sft", *common, init)
    good = outputs(out)
    assert {"done.json", "run.json", "model/model.safetensors"} <= set(good)

    corrupt = tmp_path / "corrupt"
    shutil.copytree(smoke_world / "pretrain" / "model", corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not a checkpoint")
    proc = run_stage("cold_start_sft", *common, f"io.init_model={corrupt}", check=False)
    assert proc.returncode != 0 and outputs(out) == good, "a failed rerun leaves the earlier outputs as they were"

    kill_after_checkpoint("cold_start_sft", out, *common, init)
    assert outputs(out) == good, "a killed rerun leaves the earlier outputs as they were"

    proc = run_stage("cold_start_sft", *common, init)
    assert "resuming from" in proc.stderr + proc.stdout
    assert outputs(out)["model/model.safetensors"] == good["model/model.safetensors"], "resumed exactly"
    assert json.loads((out / "done.json").read_text())["steps"] == 24
    assert not (out / ATTEMPT).exists(), "published: the attempt and its checkpoints are gone"


def assert_failed_cleanly(proc, out, *needles):
    assert proc.returncode != 0
    text = proc.stderr + proc.stdout
    for needle in needles:
        assert needle in text, text[-2000:]
    assert not (out / "done.json").exists()


def test_missing_upstream_checkpoint(smoke_world, tmp_path):
    out = tmp_path / "sft"
    proc = run_stage("cold_start_sft", f"results_dir={smoke_world}", f"io.data_dir={smoke_world}/data",
                     f"io.out_dir={out}", f"io.init_model={tmp_path}/nowhere", f"hydra.run.dir={out}", check=False)
    assert_failed_cleanly(proc, out, "model not found", "nowhere': no such directory")


@pytest.mark.parametrize("init, says", [
    ("reslts/smoke/pretrain/model", "'reslts/smoke/pretrain/model': no such directory"),  # never a hub id
    ("pretrain_model", "the hub (http://127.0.0.1:9) does not answer"),  # a hub id, with no hub
])
def test_a_model_that_is_nowhere_fails_in_seconds_in_one_sentence(init, says, smoke_world, tmp_path):
    """A typo of a local path, or a hub id with no network, fails before compute, saying so, and
    before touching the outputs of an earlier run: before, the first was looked up on the hub and the
    second retried it for about a minute, each ending in an 80-line traceback, after deleting the
    earlier run's done.json."""
    out = tmp_path / "sft"
    shutil.copytree(smoke_world / "cold_start_sft", out)  # an earlier good run's outputs
    before = (out / "done.json").read_bytes()
    proc = run_stage("cold_start_sft", f"results_dir={smoke_world}", f"io.data_dir={smoke_world}/data",
                     f"io.out_dir={out}", f"io.init_model={init}", f"hydra.run.dir={out}", check=False,
                     env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"error: cold_start_sft: model not found: '{init}'" in proc.stderr and says in proc.stderr, proc.stderr
    assert (out / "done.json").read_bytes() == before, "the earlier run's completion is left in place"


def test_malformed_data_row_names_file_and_line(smoke_world, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(smoke_world / "data", data)
    lines = (data / "cold_start.jsonl").read_text().splitlines()
    lines[2] = '{"id": "broken", "messages": [ '
    (data / "cold_start.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "sft"
    proc = run_stage("cold_start_sft", f"results_dir={smoke_world}", f"io.data_dir={data}", f"io.out_dir={out}",
                     f"io.init_model={smoke_world}/pretrain/model", f"hydra.run.dir={out}", check=False)
    assert_failed_cleanly(proc, out, "cold_start.jsonl:3", "malformed JSON")


def test_unreachable_mlflow_server_fails_before_compute(smoke_world, tmp_path):
    out = tmp_path / "eval"
    proc = run_stage("evaluate", f"results_dir={smoke_world}", f"io.data_dir={smoke_world}/data", f"io.out_dir={out}",
                     f"io.init_model={smoke_world}/pretrain/model", f"hydra.run.dir={out}",
                     env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, check=False)
    assert_failed_cleanly(proc, out, "unreachable", "127.0.0.1:9")
    assert not (out / "metrics.json").exists()


def test_rejection_sampling_by_hand_then_general_sft(smoke_world, tmp_path):
    rs, gen = tmp_path / "rs", tmp_path / "gen"
    common = [f"results_dir={smoke_world}", f"io.data_dir={smoke_world}/data"]
    run_stage("rejection_sampling", *common, f"io.out_dir={rs}", f"hydra.run.dir={rs}",
              f"io.init_model={smoke_world}/cold_start_sft/model")
    assert len(list((rs / "shards").glob("prompts_*.jsonl"))) == 2  # 64 prompts, shards of 32
    report = json.loads((rs / "report.json").read_text())
    assert report["sampled"] == 64 * 2 and report["kept"] + sum(report["dropped"].values()) == 128
    assert (rs / "lengths.png").stat().st_size > 1000 and (rs / "reasoning_sft.jsonl").is_file()
    run_stage("general_sft", *common, f"io.out_dir={gen}", f"hydra.run.dir={gen}",
              f"io.init_model={smoke_world}/pretrain/model", upstream(data=f"{smoke_world}/data", rejection_sampling=rs))
    done = json.loads((gen / "done.json").read_text())
    assert done["steps"] == 6 and done["rows"]["general"] > 0 and (gen / "model" / "model.safetensors").is_file()


def test_rejection_sampling_shard_job_needs_its_shard(smoke_world, tmp_path):
    out = tmp_path / "rs"
    proc = run_stage("rejection_sampling", f"results_dir={smoke_world}", f"io.data_dir={smoke_world}/data",
                     f"io.out_dir={out}", f"hydra.run.dir={out}", "io.part=sample",
                     f"io.init_model={smoke_world}/cold_start_sft/model", check=False)  # a model that is there
    assert_failed_cleanly(proc, out, "io.shard")


def test_student_is_pretrained_small_then_distilled(smoke_world, tmp_path):
    """A student is the teacher's model section plus its overrides: pretrained from scratch by the
    pretrain stage, then trained by SFT only on curated samples (distill_data = the curation
    machinery on another model)."""
    dd, pre, dist = tmp_path / "distill_data", tmp_path / "pre", tmp_path / "distill"
    common = [f"results_dir={smoke_world}", f"io.data_dir={smoke_world}/data"]
    run_stage("distill_data", *common, f"io.out_dir={dd}", f"hydra.run.dir={dd}",
              f"io.init_model={smoke_world}/cold_start_sft/model")
    assert json.loads((dd / "report.json").read_text())["sampled"] == 64 * 2
    run_stage("pretrain", *common, "student=quarter", f"io.out_dir={pre}", f"hydra.run.dir={pre}")
    cfg = json.loads((pre / "model" / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["intermediate_size"]) == (8, 16)  # conf/experiment/smoke.yaml students.quarter
    run_stage("distill", *common, "student=quarter", f"io.out_dir={dist}", f"hydra.run.dir={dist}",
              f"io.init_model={pre}/model", upstream(data=f"{smoke_world}/data", distill_data=dd))
    done = json.loads((dist / "done.json").read_text())
    assert done["steps"] == 6 and done["rows"]["general"] > 0
    assert json.loads((dist / "model" / "config.json").read_text())["hidden_size"] == 8


def test_distill_needs_a_known_student(smoke_world, tmp_path):
    out = tmp_path / "distill"
    common = [f"results_dir={smoke_world}", f"io.data_dir={smoke_world}/data", f"io.out_dir={out}",
              f"hydra.run.dir={out}"]
    assert_failed_cleanly(run_stage("distill", *common, check=False), out, "student: distill trains a student: "
                          "name one of half, quarter (e.g. student=half)")
    assert_failed_cleanly(run_stage("distill", *common, "student=giant", check=False), out, "'giant'", "half")
