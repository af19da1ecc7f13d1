"""Checkpoints that standard clients read as the project does: an exported checkpoint's token ids
through ``AutoTokenizer`` (what vLLM and lm-eval load) equal the project's loader's, its config
carries no loader settings, and lm-eval-harness's ``hf`` backend, greedy on a local task, writes
the same completions and scores the same as the project's own sampling and verifier."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from r1flow.config import compose
from r1flow.harness.models import LOADER_KEYS, export_hf, load_model, load_tokenizer, standard_ids_agree
from r1flow.sampling.prompts import render_prompt
from r1flow.sampling.rollout import HFGenerator, SamplingParams
from r1flow.sampling.verify import extract_answer, score

N_ITEMS, MAX_TOKENS = 80, 64


def exported(hf_world, tmp_path: Path) -> Path:
    """The world's base model exported by the project's own export path."""
    model = load_model(hf_world["base"], compose(["experiment=hf_smoke"]).model)
    return export_hf(model, load_tokenizer(hf_world["base"]), tmp_path / "exported")


def test_an_exported_checkpoint_reads_the_same_through_autotokenizer(hf_world, tmp_path):
    path = exported(hf_world, tmp_path)
    ours, auto = load_tokenizer(str(path)), AutoTokenizer.from_pretrained(path)
    text = render_prompt(ours, "Mia has 3 bags of 12 marbles. How many?") + "12*3=<<12*3=36>>36 \\boxed{36}"
    assert auto(text)["input_ids"] == ours(text)["input_ids"] and standard_ids_agree(ours, path)
    assert not set(LOADER_KEYS) & set(json.loads((path / "tokenizer_config.json").read_text()))


def task_yaml(items: Path, stop: str) -> str:
    """A local lm-eval task: the project's rendered prompts, greedy until the end of turn, the boxed
    answer extracted and matched exactly."""
    return "\n".join([
        "task: r1flow_local", "dataset_path: json", "dataset_kwargs:", "  data_files:", f"    test: {items}",
        "test_split: test", "output_type: generate_until", 'doc_to_text: "{{prompt}}"', 'doc_to_target: "{{answer}}"',
        "generation_kwargs:", f"  until: [{json.dumps(stop)}]", "  do_sample: false", f"  max_gen_toks: {MAX_TOKENS}",
        "filter_list:", "  - name: boxed", "    filter:", "      - function: regex",
        '        regex_pattern: "\\\\\\\\boxed\\\\{(-?[0-9]+)\\\\}"', "      - function: take_first",
        "metric_list:", "  - metric: exact_match", ""])


@pytest.mark.slow
def test_lm_eval_scores_an_exported_checkpoint_as_evaluate_does(hf_world, tmp_path):
    lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is a test dependency (pip install -e '.[dev]')")
    from lm_eval.tasks import TaskManager

    path = exported(hf_world, tmp_path)
    tok, model = load_tokenizer(str(path)), load_model(str(path), compose(["experiment=hf_smoke"]).model)
    rows = [json.loads(line) for line in Path(hf_world["problems"]).read_text().splitlines()[:N_ITEMS]]
    items = [{"id": str(i), "family": "gsm8k", "question": r["question"], "metadata": {}, "verifier": "math",
              "answer": re.search(r"####\s*(.+)$", r["answer"]).group(1), "answer_format": "boxed"}
             for i, r in enumerate(rows)]
    prompts = [render_prompt(tok, it["question"]) for it in items]  # the prompts the base model was trained on
    ours = HFGenerator(model, tok, progress=False).generate(prompts, SamplingParams(n=1, temperature=0.0,
                                                                                      max_new_tokens=MAX_TOKENS))
    correct = [score(it, extract_answer(c[0].text, "boxed")) for it, c in zip(items, ours)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"prompt": p, "answer": it["answer"]}) + "\n"
                                                  for p, it in zip(prompts, items)))
    (tmp_path / "task.yaml").write_text(task_yaml(tmp_path / "items.jsonl", "<|im_end|>"))
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={path},dtype=float32", tasks=["r1flow_local"],
                                  task_manager=TaskManager(include_path=str(tmp_path)), log_samples=True,
                                  batch_size=8, device="cpu")
    samples = sorted(out["samples"]["r1flow_local"], key=lambda s: s["doc_id"])
    assert [s["resps"][0][0] for s in samples] == [c[0].text for c in ours]
    assert 0 < sum(correct) < N_ITEMS  # a score that could tell a broken client from a working one
    assert out["results"]["r1flow_local"]["exact_match,boxed"] == pytest.approx(sum(correct) / N_ITEMS)
