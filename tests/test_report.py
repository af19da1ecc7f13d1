"""The report: each of the paper's claims judged from the numbers, either way; the results table;
the smoke DAG's report outputs; the README's generated results section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1flow.report.claims import CLAIMS, Evidence, check_claims, claims_markdown
from r1flow.report.results import common_spec, markdown_table, stale, table_rows

SPEC = {"k": 8, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 96, "seed": 0, "verifiers": ["math"]}


def row(label, p1, half_width=0.02, hard=0.1, params=1000, wall=10.0, fmt=1.0, template="chat"):
    heldout = {"pass@1": p1, "pass@1_ci95": [p1 - half_width, p1 + half_width], "cons@k": p1, "pass@k": p1,
               "format_rate": fmt, "mean_length": 20.0}
    return {"label": label, "parameters": params, "done": {"wall_s": wall}, "record": {},
            "samples": Path("/nonexistent"),
            "metrics": {"splits": {"heldout": heldout, "hard": {"pass@1": hard}},
                        "spec": {**SPEC, "model": f"results/{label}/model", "template": template}}}


def rl_history(lengths, pass1):
    hist = [{"step": i + 1, "reward": 0.5, "completions/mean_length": n} for i, n in enumerate(lengths)]
    return hist + [{"step": 30 * i, "val/pass@1": p} for i, p in enumerate(pass1)]


def verdicts(by_label, runs, students, checks_n=None):
    return {c["claim"]: c["verdict"] for c in check_claims(Evidence(by_label, runs, students, checks_n))}


def samples(path: Path, responses: list[str]) -> Path:
    path.write_text("".join(json.dumps({"split": "heldout", "question": "Calculate 3 + 4.", "response": r}) + "\n"
                            for r in responses))
    return path


def test_claims_follow_the_numbers(tmp_path):
    runs = {"r1_zero": rl_history([30] * 10 + [40] * 10, [0.05, 0.08]),
            "reasoning_rl": rl_history([20] * 10 + [24] * 10, [0.15, 0.35])}
    reflective = samples(tmp_path / "reflective.jsonl", ["3 + 4 =\n7, check: 7 - 4 = 3", "5"])
    good = {r["label"]: r for r in [
        row("base", 0.40), row("r1_zero", 0.50, fmt=0.9, template="r1_zero"), row("cold_start_sft", 0.15),
        {**row("reasoning_rl", 0.45), "samples": reflective},
        row("all_scenario_rl", 0.52, params=4000), row("student_medium", 0.40, params=2000),
        row("student_small", 0.30, params=1000), row("rl_only_small", 0.20, params=1000)]}
    v = verdicts(good, runs, ["medium", "small"])
    assert v == {"RL raises pass@1 a lot": "reproduced",
                 "Response length grows during RL; reflective words appear": "reproduced",
                 "Distillation beats RL on the same small model (student small)": "reproduced",
                 "Cold start makes RL better and faster; R1-Zero's drawback is readability": "not reproduced",
                 "Larger students distil better, all below the teacher": "reproduced"}

    # R1-Zero is measured against its base on its own template where the DAG evaluated the base there
    same = dict(good, base_on_r1_zero=row("base_on_r1_zero", 0.49, template="r1_zero"))
    assert verdicts(same, runs, ["medium", "small"])["RL raises pass@1 a lot"] == "partly"
    text = check_claims(Evidence(same, runs, ["medium", "small"]))[0]["evidence"]
    assert "base 49.0 [47.0, 51.0] → r1_zero 50.0 [48.0, 52.0] (both on the r1_zero template)" in text
    text = check_claims(Evidence(good, runs, ["medium", "small"]))[0]["evidence"]
    assert "(the base on the chat template, r1_zero on the r1_zero one)" in text

    # the same claims fail when the numbers say so: overlapping intervals are not a gain
    bad = dict(good, r1_zero=row("r1_zero", 0.41), rl_only_small=row("rl_only_small", 0.31),
               student_medium=row("student_medium", 0.25, params=2000), reasoning_rl=row("reasoning_rl", 0.60))
    runs["reasoning_rl"] = rl_history([24] * 20, [0.15, 0.35])
    v = verdicts(bad, runs, ["medium", "small"])
    assert v["RL raises pass@1 a lot"] == "partly"  # reasoning RL rose, R1-Zero did not
    assert v["Response length grows during RL; reflective words appear"] == "partly"
    assert v["Distillation beats RL on the same small model (student small)"] == "not reproduced"
    assert v["Cold start makes RL better and faster; R1-Zero's drawback is readability"] == "reproduced"
    assert v["Larger students distil better, all below the teacher"] == "partly"
    # lengths that grow with no reflective word in the held-out samples are half of that claim
    silent = dict(good, reasoning_rl={**good["reasoning_rl"], "samples": samples(tmp_path / "s.jsonl", ["3", "7"])})
    runs_grow = dict(runs, reasoning_rl=rl_history([20] * 10 + [24] * 10, [0.15, 0.35]))
    assert verdicts(good, runs_grow, ["medium", "small"])["Response length grows during RL; reflective words "
                                                          "appear"] == "reproduced"
    assert verdicts(silent, runs_grow, ["medium", "small"])["Response length grows during RL; reflective words "
                                                            "appear"] == "partly"
    text = claims_markdown(check_claims(Evidence(bad, runs, ["medium", "small"])))
    assert "**not reproduced**" in text and "(§4.1, Table 6): Qwen-32B: distilled 72.6" in text
    # R1-Zero judged on its own template: its checks rose 5 -> 8 %, within the noise of 200 prompts...
    assert verdicts(bad, runs, ["medium", "small"], 200)["RL raises pass@1 a lot"] == "partly"
    # ...but 5 -> 30 % is a rise, whatever the base scores on the chat template
    runs["r1_zero"] = rl_history([30] * 20, [0.05, 0.30])
    assert verdicts(bad, runs, ["medium", "small"], 200)["RL raises pass@1 a lot"] == "reproduced"


def test_results_table_lists_every_checkpoint_with_its_interval():
    rows = [row("base", 0.4), row("base_on_r1_zero", 0.1, template="r1_zero"), row("student_small", 0.3)]
    md = markdown_table(table_rows(rows), 8, common_spec(rows))
    assert "| base | chat | 1,000 | 40.0 [38.0, 42.0] |" in md and "| student_small | chat |" in md
    assert "| base_on_r1_zero | r1_zero | 1,000 | 10.0 [8.0, 12.0] |" in md
    assert "k = 8, T = 0.6, top-p = 0.95" in md


@pytest.mark.parametrize("key, value", [("temperature", 1.0), ("k", 4), ("max_new_tokens", 64)])
def test_rows_evaluated_under_another_spec_are_an_error_naming_them(key, value):
    rows = [row("base", 0.4), row("r1_zero", 0.1, template="r1_zero"), row("cold_start_sft", 0.3)]
    rows[1]["metrics"]["spec"]["verifiers"] = ["math", "exact"]  # graded on a general split too
    spec = common_spec(rows)  # the model, the template and the verifiers may differ per row
    assert spec["temperature"] == 0.6 and spec["verifiers"] == ["exact", "math"]
    rows[2]["metrics"]["spec"][key] = value
    with pytest.raises(ValueError, match=f"evaluations of base and cold_start_sft differ in eval spec {key}:"):
        common_spec(rows)


def test_an_evaluation_older_than_its_checkpoint_is_left_out(tmp_path):
    stage, ev = tmp_path / "reasoning_rl", tmp_path / "eval" / "reasoning_rl"
    for d in (stage, ev):
        d.mkdir(parents=True)
    (stage / "done.json").write_text(json.dumps({"run_id": "run-2"}))
    (ev / "run.json").write_text(json.dumps({"upstream_run_ids": ["data-run", "run-1"]}))
    assert stale(ev, stage), "it evaluated the checkpoint of run-1; the stage's is run-2's"
    (ev / "run.json").write_text(json.dumps({"upstream_run_ids": ["data-run", "run-2"]}))
    assert not stale(ev, stage)
    assert not stale(ev, None), "an external base model has no stage that could train it again"


def test_every_claim_cites_the_paper():
    for claim in CLAIMS:
        assert claim.paper and claim.cite.startswith("§"), claim.title


def test_the_smoke_dags_report(smoke_dag):
    out = smoke_dag.res / "report"
    table = (out / "results.md").read_text()
    for label in ("base", "all_scenario_rl", "student_half", "student_quarter", "rl_only_quarter"):
        assert f"| {label} |" in table
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 12 and rows[0].startswith("checkpoint,template,parameters,heldout_pass@1")
    assert [r.split(",")[0] for r in rows[1:]] == ["base", "base_on_r1_zero", "r1_zero", "cold_start_sft", "reasoning_rl", "general_sft",
                                                   "all_scenario_rl", "base_half", "student_half", "base_quarter",
                                                   "student_quarter", "rl_only_quarter"]
    assert "Distillation beats RL on the same small model (student quarter)" in (out / "claims.md").read_text()
    for png in ("pass_at_1", "pass_at_k", "rl_curves", "distill_vs_rl"):
        assert (out / f"{png}.png").stat().st_size > 5000


def test_the_readme_results_are_written_from_a_runs_outputs(smoke_dag, tmp_path):
    from r1flow.report.readme import read_block, results_section, write_block

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- BEGIN results -->\nstale\n<!-- END results -->\nafter\n")
    write_block(readme, "results", results_section(smoke_dag.res), "python -m r1flow.report.readme --results ...")
    block = read_block(readme, "results")
    assert "stale" not in block and readme.read_text().endswith("after\n")
    assert " jobs in **" in block and "| base | chat | 32,672 |" in block and "| student_quarter |" in block
    assert "**rejection_sampling**: kept" in block and "**helpfulness_rm**: held-out accuracy" in block
    assert "| Distillation beats RL on the same small model (student quarter) (§4.1, Table 6:" in block


def test_the_generated_docs_are_current():
    from r1flow.report.readme import ROOT, read_block, stage_table

    assert read_block(ROOT / "docs" / "recipe.md", "stage-table") == stage_table(), \
        "run: python -m r1flow.report.readme"
