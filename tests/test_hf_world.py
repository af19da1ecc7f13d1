"""The Hugging Face-shaped world of tests/hf_world.py: loadable with the Auto classes as a hub checkpoint
is, ChatML with an end-of-turn token that is not EOS, both kinds of generation prompt, GSM8K-shaped data,
and the same bytes from the same seed."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hf_world import EOS, IM_END, build_hf_world
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

COLUMNS = {"problems": {"question", "answer"}, "hard": {"question", "answer"}, "general_sft": {"messages"},
           "helpfulness": {"prompt", "chosen", "rejected"}, "harmlessness": {"prompt", "chosen", "rejected"},
           "safety": {"prompt"}}
TEXTS = ["Tom has 3*4=<<3*4=12>>12 apples.\n#### 12", "café, naïve — 12345  spaces\n\n",
         "<think>\nx</think>\nThe answer is <answer>7</answer>. \\boxed{7}"]
USER = [{"role": "user", "content": "Capitalise: river stone"}]


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root``: relative path -> bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def check_tokenizer(paths: dict[str, str]) -> None:
    """Round trip, EOS distinct from end-of-turn, and AutoTokenizer's ids equal to the saved pipeline's."""
    tok = AutoTokenizer.from_pretrained(paths["tokenizer"])
    core = Tokenizer.from_file(str(Path(paths["tokenizer"]) / "tokenizer.json"))
    chat = tok.apply_chat_template([*USER, {"role": "assistant", "content": TEXTS[2]}], tokenize=False)
    for text in [*TEXTS, chat]:
        ids = tok(text)["input_ids"]
        assert ids == core.encode(text).ids, text
        assert tok.decode(ids) == text
    assert tok.eos_token == tok.pad_token == EOS and tok.bos_token is None
    assert tok.convert_tokens_to_ids(IM_END) != tok.eos_token_id
    assert chat.endswith(f"{TEXTS[2]}{IM_END}\n")
    assert all(len(tok(tag)["input_ids"]) == 1 for tag in ("<think>", "</think>", "<answer>", "</answer>"))
    config = json.loads((Path(paths["tokenizer"]) / "tokenizer_config.json").read_text())
    assert not {"is_local", "local_files_only"} & set(config)


def check_generation_prompts(paths: dict[str, str]) -> None:
    """Qwen's template opens the assistant's turn only; the R1-Distill-like one also pre-fills <think>."""
    plain = AutoTokenizer.from_pretrained(paths["base"])
    prefill = AutoTokenizer.from_pretrained(paths["base_prefill"])
    prompt = plain.apply_chat_template(USER, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and not prompt.endswith("<think>\n")
    assert prefill.apply_chat_template(USER, tokenize=False, add_generation_prompt=True) == prompt + "<think>\n"
    weights = [(Path(paths[name]) / "model.safetensors").read_bytes() for name in ("base", "base_prefill")]
    assert weights[0] == weights[1]


def check_models(paths: dict[str, str]) -> None:
    """Both checkpoints load with AutoModelForCausalLM and generate; the base answers in the right shape
    and stops at one of its generation config's EOS ids, end-of-turn first."""
    tok = AutoTokenizer.from_pretrained(paths["base"])
    question = json.loads(Path(paths["problems"]).read_text().splitlines()[0])["question"]
    prompt = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                     add_generation_prompt=True)
    inputs = tok(prompt, return_tensors="pt")
    for name in ("base", "student"):
        model = AutoModelForCausalLM.from_pretrained(paths[name])
        stops = model.generation_config.eos_token_id
        assert stops == [tok.convert_tokens_to_ids(IM_END), tok.eos_token_id]
        assert model.config.eos_token_id == model.config.pad_token_id == tok.eos_token_id
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=80, do_sample=False)[0, inputs["input_ids"].shape[1]:]
        assert len(out) > 0
        if name == "base":
            assert "\\boxed{" in tok.decode(out) and out[-1].item() in stops, tok.decode(out)


def check_jsonl(paths: dict[str, str]) -> None:
    """Each data set has its documented columns; GSM8K rows end in '#### n', some with <<...>> annotations."""
    rows = {name: [json.loads(line) for line in Path(paths[name]).read_text().splitlines()] for name in COLUMNS}
    for name, columns in COLUMNS.items():
        assert rows[name] and all(set(row) == columns for row in rows[name]), name
    for name in ("problems", "hard"):
        assert all(row["answer"].split("\n")[-1].removeprefix("#### ").isdigit() for row in rows[name])
        assert any("<<" in row["answer"] for row in rows[name])
        assert len({row["question"] for row in rows[name]}) == len(rows[name])
    assert all([m["role"] for m in row["messages"]] == ["user", "assistant"] for row in rows["general_sft"])
    assert all("<think>" not in row["messages"][1]["content"] for row in rows["general_sft"])
    safety = {row["prompt"] for row in rows["safety"]}
    assert not safety & {row["prompt"] for row in rows["harmlessness"]}


def test_hf_world(tmp_path):
    paths = build_hf_world(tmp_path / "a", seed=0)
    check_tokenizer(paths)
    check_generation_prompts(paths)
    check_models(paths)
    check_jsonl(paths)
    build_hf_world(tmp_path / "b", seed=0)
    first, second = files(tmp_path / "a"), files(tmp_path / "b")
    assert first.keys() == second.keys() and "base/model.safetensors" in first
    assert [k for k in first if first[k] != second[k]] == []
