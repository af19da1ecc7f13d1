"""Reasoning prompts from the user's own tables: the GSM8K and MATH presets read hand-written rows in
each format, bad files fail with the key and examples, hash splits are stable and disjoint, and
decontamination drops overlapping training rows (and only those)."""

from __future__ import annotations

import json
import random
import time

import pandas as pd
import pytest
from omegaconf import OmegaConf

from r1flow.config import compose
from r1flow.config.data import DataConfig, FileSourceConfig
from r1flow.data.splits import decontaminate, hash_region, normalize, split_rows
from r1flow.data.tables import cold_start_trace, looks_local, read_table
from r1flow.harness.files import DataError

GSM8K_ROWS = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
                 "in May. How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
               "altogether in April and May.\n#### 72"},
    {"question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
                 "How much did she earn?",
     "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned "
               "0.2 x 50 = $<<0.2*50=10>>10.\n#### 10"},
    {"question": "  natalia SOLD clips to 48 of her friends in April, and then she sold half as many clips "
                 "in May.   How many clips did Natalia sell altogether in April and May? ",
     "answer": "A repeat of the first problem.\n#### 72"},
]
MATH_ROWS = [
    {"problem": "What is $\\frac{1}{4} + \\frac{1}{4}$?", "answer": "\\frac{1}{2}",
     "solution": "Adding, $\\frac{1}{4} + \\frac{1}{4} = \\frac{2}{4} = \\boxed{\\frac{1}{2}}$."},
    {"problem": "Compute $\\sqrt{16}$.", "answer": "4", "solution": "$4^2 = 16$, so $\\sqrt{16} = 4$."},
]


def write(path, rows):
    """``rows`` as a JSONL, Parquet or CSV file, by the extension of ``path``."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    else:
        pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def preset(name: str, path: str, *overrides: str):
    """The ``data`` section of the root config with preset ``name`` reading ``path``."""
    return compose([f"data={name}", f"data.files.path={path}", *overrides]).data


@pytest.mark.parametrize("ext", [".jsonl", ".parquet", ".csv"])
def test_gsm8k_preset_reads_gold_and_solution(tmp_path, ext):
    data = preset("gsm8k", write(tmp_path / f"train{ext}", GSM8K_ROWS))
    rows = read_table(data.files, data.answer_format)
    assert len(rows) == 2  # the third row repeats the first (case and spacing aside)
    first = rows[0]
    assert first["answer"] == "72" and first["family"] == "gsm8k" and first["verifier"] == "math"
    assert first["answer_format"] == "boxed" and first["id"].startswith("gsm8k-")
    solution = first["metadata"]["solution"]
    assert "####" not in solution and "<<" not in solution and ">>" not in solution
    assert solution.endswith("Natalia sold 48+24 = 72 clips altogether in April and May.")
    assert rows[1]["answer"] == "10"
    trace = cold_start_trace(first, data.answer_format)
    assert trace == f"<think>\n{solution}\n</think>\nThe answer is \\boxed{{72}}."
    assert cold_start_trace(first, "tags").endswith("The answer is <answer>72</answer>.")


@pytest.mark.parametrize("ext", [".jsonl", ".parquet", ".csv"])
def test_math_preset_reads_latex_answers(tmp_path, ext):
    rows = [{**r, "uid": f"m{i}"} for i, r in enumerate(MATH_ROWS)]
    data = preset("math", write(tmp_path / f"math{ext}", rows), "data.files.columns.id=uid")
    out = read_table(data.files, data.answer_format)
    assert [r["answer"] for r in out] == ["\\frac{1}{2}", "4"]
    assert [r["id"] for r in out] == ["m0", "m1"]
    assert out[0]["question"] == MATH_ROWS[0]["problem"] and out[0]["family"] == "math"
    assert out[0]["metadata"]["solution"] == MATH_ROWS[0]["solution"]
    no_solution = {**out[1], "metadata": {}}
    assert cold_start_trace(no_solution, "boxed") is None


def test_directory_of_files_and_max_rows(tmp_path):
    (tmp_path / "shards").mkdir()
    write(tmp_path / "shards" / "a.jsonl", MATH_ROWS[:1])
    write(tmp_path / "shards" / "b.jsonl", MATH_ROWS[1:])
    data = preset("math", str(tmp_path / "shards"), "data.files.family=null")
    rows = read_table(data.files, data.answer_format)
    assert len(rows) == 2 and rows[0]["family"] == "shards"
    data = preset("math", str(tmp_path / "shards"), "data.files.max_rows=1")
    assert len(read_table(data.files, data.answer_format)) == 1


def test_missing_column_names_key_and_columns(tmp_path):
    path = write(tmp_path / "math.jsonl", MATH_ROWS)
    data = preset("math", path, "data.files.columns.answer=final")
    with pytest.raises(DataError) as err:
        read_table(data.files, data.answer_format)
    msg = str(err.value)
    assert path in msg and "data.files.columns.answer" in msg and "'final'" in msg
    for column in ("problem", "answer", "solution"):
        assert column in msg


def test_unparseable_golds_fail_with_share_and_examples(tmp_path):
    rows = [*GSM8K_ROWS[:2], {"question": "What is two plus two?", "answer": "It is 4, no marker."},
            {"question": "What is three plus three?", "answer": "#### \\frac{"}]
    data = preset("gsm8k", write(tmp_path / "bad.jsonl", rows))
    with pytest.raises(DataError) as err:
        read_table(data.files, data.answer_format)
    msg = str(err.value)
    assert "2 of 4 rows (50.0%)" in msg and "data.files.max_unparseable" in msg
    assert "row 3: answer_pattern does not match" in msg and "row 4: verifier 'math'" in msg
    data = preset("gsm8k", data.files.path, "data.files.max_unparseable=0.5")
    assert [r["answer"] for r in read_table(data.files, data.answer_format)] == ["72", "10"]


def test_nonexistent_local_path_fails_fast(tmp_path):
    for path in (str(tmp_path / "nope.jsonl"), "data/nowhere/train.parquet", "./gsm8k", str(tmp_path / "*.csv")):
        data = preset("gsm8k", path)
        start = time.monotonic()
        with pytest.raises(DataError, match="no such file"):
            read_table(data.files, data.answer_format)
        assert time.monotonic() - start < 5
    assert looks_local("data/gsm8k/train.jsonl") and looks_local("~/x") and looks_local("train.csv")
    assert not looks_local("openai/gsm8k") and not looks_local("AI-MO/NuminaMath-1.5")


def synthetic_rows(n: int) -> list[dict]:
    return [{"id": f"q{i}", "question": f"Problem number {i}: what is {i} plus {i + 1}?", "answer": str(2 * i + 1)}
            for i in range(n)]


def data_config(**values) -> DataConfig:
    data = OmegaConf.structured(DataConfig)
    data.files = FileSourceConfig(path="table.jsonl")
    return OmegaConf.merge(data, values)


def test_hash_splits_are_stable_and_disjoint():
    rows = synthetic_rows(600)
    data = data_config(heldout_permille=150, validation_permille=50, n_heldout=1000, n_validation=1000)
    splits = split_rows(rows, data)
    assert set(splits) == {"train", "heldout", "validation"}
    ids = {name: [r["id"] for r in split] for name, split in splits.items()}
    assert sum(map(len, ids.values())) == 600 and len(set().union(*map(set, ids.values()))) == 600
    assert 50 <= len(ids["heldout"]) <= 130 and 10 <= len(ids["validation"]) <= 60
    assert all(r["split"] == name for name, split in splits.items() for r in split)
    shuffled = rows[::-1]
    random.Random(0).shuffle(shuffled)
    assert {name: [r["id"] for r in split] for name, split in split_rows(shuffled, data).items()} == ids
    for r in splits["validation"]:  # the region is the hash of the question, whatever its spacing or case
        assert hash_region(f"  {r['question'].upper()} ", 150, 50) == "validation"
    capped = split_rows(rows, data_config(heldout_permille=150, validation_permille=50, n_validation=5))
    assert [r["id"] for r in capped["validation"]] == ids["validation"][:5]
    assert len(capped["train"]) == len(ids["train"])  # the caller caps the train split
    assert "validation" not in split_rows(rows, data_config(heldout_permille=150, validation_permille=0))


def test_empty_split_names_its_key():
    rows = synthetic_rows(20)
    with pytest.raises(DataError, match=r"table\.jsonl: the heldout split is empty.*20 problems.*data\.heldout_permille"):
        split_rows(rows, data_config(heldout_permille=0, validation_permille=0))
    with pytest.raises(DataError, match=r"the validation split is empty.*data\.validation_permille"):
        split_rows(rows, data_config(heldout_permille=500, validation_permille=1))


def test_decontamination_drops_exact_and_ngram_overlaps():
    held = [{"id": "h1", "question": "A train leaves the station at noon travelling at sixty miles per hour "
                                     "towards a city two hundred miles away. When does it arrive?"}]
    valid = [{"id": "v1", "question": "What is the sum of the first ten positive integers?"}]
    train = [
        {"id": "t-exact", "question": "  what is the SUM of the first ten positive integers "},
        {"id": "t-ngram", "question": "Suppose a train leaves the station at noon travelling at sixty miles "
                                      "per hour towards a town. How far has it gone by three?"},
        {"id": "t-clean", "question": "A bus leaves at nine. It travels forty miles. How fast is it going?"},
        {"id": "t-near", "question": "What is the sum of the first five even numbers?"},  # a 7-gram only,
    ]
    kept, report = decontaminate(train, {"heldout": held, "validation": valid}, ngram=8)
    assert [r["id"] for r in kept] == ["t-clean", "t-near"]
    assert report["train_rows"] == 4 and report["dropped_exact"] == 1 and report["dropped_ngram"] == 1
    assert report["by_split"] == {"heldout": {"exact": 0, "ngram": 1}, "validation": {"exact": 1, "ngram": 0}}
    assert {(e["train_id"], e["eval_id"], e["split"], e["kind"]) for e in report["examples"]} == {
        ("t-exact", "v1", "validation", "exact"), ("t-ngram", "h1", "heldout", "ngram")}
    kept, report = decontaminate(train, {"heldout": held, "validation": valid}, ngram=0)
    assert len(kept) == 3 and report["dropped_ngram"] == 0 and report["dropped_exact"] == 1
    assert normalize("  What is  2+2? ") == "what is 2+2"
