"""The report: each of the paper's claims judged from the numbers, either way; the results table;
the smoke DAG's report outputs; the README's generated results section."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import snakemake

from r1flow.report.claims import CLAIMS, Evidence, check_claims, claims_markdown, judge_seeds
from r1flow.report.results import common_spec, family_table, markdown_table, stale, table_rows

SPEC = {"k": 8, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 96, "seed": 0, "verifiers": ["math"]}


def row(label, p1, half_width=0.02, hard=0.1, params=1000, wall=10.0, fmt=1.0, template="chat"):
    heldout = {"pass@1": p1, "pass@1_ci95": [p1 - half_width, p1 + half_width], "cons@k": p1, "pass@k": p1,
               "format_rate": fmt, "mean_length": 20.0}
    return {"label": label, "parameters": params, "done": {"wall_s": wall}, "record": {},
            "samples": Path("/nonexistent"),
            "metrics": {"splits": {"heldout": heldout, "hard": {"pass@1": hard}},
                        "spec": {**SPEC, "model": f"results/{label}/model", "template": template}}}


def rl_history(lengths, pass1, reflective=None, every=20, check_lengths=None):
    reflective = reflective or [0.0] * len(lengths)
    hist = [{"step": i + 1, "reward": 0.5, "completions/mean_length": n, "completions/reflective_rate": r}
            for i, (n, r) in enumerate(zip(lengths, reflective))]
    checks = [{"step": every * i, "val/pass@1": p} for i, p in enumerate(pass1)]
    for check, n in zip(checks, check_lengths or []):
        check["val/mean_length"] = n
    return hist + checks


def verdicts(by_label, runs, students=("medium", "small")):
    return {c["claim"][:2]: c["verdict"] for c in check_claims(Evidence(by_label, runs, list(students)))}


def good_run():
    rows = [row("base", 0.05), row("base_on_r1_zero", 0.05, fmt=0.3, template="r1_zero"),
            row("r1_zero", 0.30, fmt=0.95, template="r1_zero"), row("cold_start_sft", 0.10), row("reasoning_rl", 0.62),
            row("all_scenario_rl", 0.65, params=4000), row("student_medium", 0.45, params=2000),
            row("student_small", 0.35, params=1000), row("rl_only_small", 0.20, params=1000)]
    runs = {"r1_zero": rl_history([30 + i / 4 for i in range(80)], [0.05, 0.3], [i / 400 for i in range(80)]),
            "reasoning_rl": rl_history([20 + i / 8 for i in range(80)], [0.1, 0.6])}
    return {r["label"]: r for r in rows}, runs


def test_claims_follow_the_numbers():
    by_label, runs = good_run()
    assert verdicts(by_label, runs) == {f"C{i}": "reproduced" for i in range(1, 9)}
    # each claim flips when its numbers do
    flips = [
        ("C1", dict(by_label, reasoning_rl=row("reasoning_rl", 0.22)), runs, "partly"),  # +12 points: < +15
        ("C2", dict(by_label, r1_zero=row("r1_zero", 0.15, fmt=0.95, template="r1_zero")), runs, "partly"),
        ("C2", dict(by_label, r1_zero=row("r1_zero", 0.30, fmt=0.5, template="r1_zero")), runs, "partly"),  # format
        ("C2", dict(by_label, r1_zero=row("r1_zero", 0.08, template="r1_zero")), runs, "not reproduced"),  # overlap
        ("C3", by_label, dict(runs, reasoning_rl=rl_history([24] * 80, [0.1, 0.6])), "partly"),
        # where a run has validation checks, their lengths judge it, not its rollouts'
        ("C3", by_label, dict(runs, reasoning_rl=rl_history([20 + i / 8 for i in range(80)], [0.1, 0.4, 0.5, 0.6],
                                                            check_lengths=[25, 24, 26, 25])), "partly"),
        ("C4", dict(by_label, rl_only_small=row("rl_only_small", 0.30, params=1000)), runs, "partly"),  # +5 points
        ("C5", dict(by_label, r1_zero=row("r1_zero", 0.40, fmt=0.95, template="r1_zero")), runs, "partly"),  # 35 < 2 x 35
        ("C5", by_label, dict(runs, r1_zero=runs["r1_zero"][:40]), "partly"),  # unequal steps: "faster" not judged
        ("C6", dict(by_label, student_medium=row("student_medium", 0.30, params=2000)), runs, "partly"),
        ("C6", dict(by_label, all_scenario_rl=row("all_scenario_rl", 0.40, params=4000)), runs, "not reproduced"),
        ("C7", dict(by_label, all_scenario_rl=row("all_scenario_rl", 0.60, params=4000)), runs, "partly"),  # < RL
        ("C8", by_label, dict(runs, r1_zero=rl_history([30] * 80, [0.05, 0.3])), "not reproduced"),
    ]
    for claim, rows, rl_runs, expected in flips:
        assert verdicts(rows, rl_runs)[claim] == expected, claim


def test_claims_name_their_numbers_and_targets():
    by_label, runs = good_run()
    claims = {c["claim"][:2]: c for c in check_claims(Evidence(by_label, runs, ["medium", "small"]))}
    assert "both on the r1_zero template: base 5.0 [3.0, 7.0] → r1_zero 30.0 [28.0, 32.0], +25.0 points" in \
        claims["C2"]["evidence"]
    assert "+0.650 points per step" in claims["C5"]["evidence"] and "+0.312 points per step" in claims["C5"]["evidence"]
    assert "training wall time: cold start + reasoning RL 20 s, R1-Zero 10 s" in claims["C5"]["evidence"]
    assert "r1_zero: rollouts +25.0 ± 0.0 tokens per 100 steps" in claims["C3"]["evidence"]
    runs = dict(runs, reasoning_rl=rl_history([24, 30] * 40, [0.1, 0.3, 0.5, 0.6, 0.6], check_lengths=[20, 21, 23, 22, 24]))
    claims = {c["claim"][:2]: c for c in check_claims(Evidence(by_label, runs, ["medium", "small"], checks_n=200))}
    # five checks: the interval is 3.18 standard errors (Student's t, 3 degrees of freedom; 1.96 would say ± 2.5)
    assert "reasoning_rl: validation checks +4.5 ± 4.0 tokens per 100 steps (20.0 → 24.0 tokens over 5 checks), " \
           "rollouts +0.3 ± 2.9 tokens per 100 steps" in claims["C3"]["evidence"] and "the same 200 validation prompts" in claims["C3"]["evidence"]
    assert claims["C3"]["verdict"] == "reproduced"
    text = claims_markdown(list(claims.values()))
    assert "(§4.1, Table 6): Qwen-32B: distilled 72.6" in text and "- target here: distilled ≥ RL-only + 10" in text
    # without the base on R1-Zero's template, C2, C5 and C7 are not judged rather than judged on another template
    chat_only = {k: v for k, v in by_label.items() if k != "base_on_r1_zero"}
    assert {"C2", "C5", "C7"}.isdisjoint(verdicts(chat_only, runs))


def test_a_claim_holds_over_seeds_only_where_it_holds_in_each():
    by_label, runs = good_run()
    seed0 = check_claims(Evidence(by_label, runs, ["medium", "small"]))
    seed1 = check_claims(Evidence(dict(by_label, reasoning_rl=row("reasoning_rl", 0.22)), runs, ["medium", "small"]))
    judged = {c["claim"][:2]: c for c in judge_seeds({0: seed0, 1: seed1})}
    assert judged["C1"]["verdict"] == "partly" and judged["C1"]["by_seed"] == {0: "reproduced", 1: "partly"}
    assert judged["C4"]["verdict"] == "reproduced"
    assert judged["C1"]["evidence"].startswith("Seed 0 (reproduced): cold start 10.0")
    seed1 = [c for c in seed1 if not c["claim"].startswith("C8")]  # a seed that cannot judge a claim
    assert {c["claim"][:2]: c["verdict"] for c in judge_seeds({0: seed0, 1: seed1})}["C8"] == "not reproduced"
    assert "over seeds 0, 1" in claims_markdown(judge_seeds({0: seed0, 1: seed1}), [0, 1])


def test_results_table_lists_every_checkpoint_with_its_interval():
    rows = [row("base", 0.4), row("base_on_r1_zero", 0.1, template="r1_zero"), row("student_small", 0.3)]
    md = markdown_table(table_rows(rows), 8, common_spec(rows))
    assert "| base | chat | 1,000 | 40.0 [38.0, 42.0] |" in md and "| student_small | chat |" in md
    assert "| base_on_r1_zero | r1_zero | 1,000 | 10.0 [8.0, 12.0] |" in md
    assert "k = 8, T = 0.6, top-p = 0.95" in md


def test_the_family_table_gives_each_checkpoints_pass_at_1_per_family_with_its_interval():
    rows = [row("base", 0.4), row("reasoning_rl", 0.6), row("student_small", 0.3)]
    fam = lambda p1, n: {"pass@1": p1, "pass@1_ci95": [p1 - 0.05, p1 + 0.05], "n_prompts": n}  # noqa: E731
    rows[0]["metrics"]["splits"]["heldout"]["per_family"] = {"chain_sum": fam(0.5, 70), "basic_arithmetic": fam(0.2, 30)}
    rows[1]["metrics"]["splits"]["heldout"]["per_family"] = {"chain_sum": fam(0.7, 70), "basic_arithmetic": fam(0.4, 30)}
    rows[2]["metrics"]["splits"]["heldout"]["per_family"] = {"chain_sum": fam(0.3, 70)}
    md = family_table(rows)
    assert "| checkpoint | basic_arithmetic (30 prompts) | chain_sum (70 prompts) |" in md
    assert "| base | 20.0 ± 5.0 | 50.0 ± 5.0 |" in md and "| reasoning_rl | 40.0 ± 5.0 | 70.0 ± 5.0 |" in md
    assert "| student_small | – | 30.0 ± 5.0 |" in md
    assert family_table([row("base", 0.4)]) == ""  # one family (or none): nothing to break down


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
    assert len(rows) == 1 + 13 and rows[0].startswith("checkpoint,template,parameters,heldout_pass@1")
    assert [r.split(",")[0] for r in rows[1:]] == ["base", "base_on_r1_zero", "r1_zero", "cold_start_sft", "reasoning_rl", "general_sft",
                                                   "all_scenario_rl", "base_half", "student_half", "base_quarter",
                                                   "base_quarter_on_r1_zero", "student_quarter", "rl_only_quarter"]
    assert "C4 Distillation beats RL on the same small model (student quarter)" in (out / "claims.md").read_text()
    for png in ("pass_at_1", "pass_at_k", "rl_curves", "distill_vs_rl"):
        assert (out / f"{png}.png").stat().st_size > 5000


def test_the_readme_results_are_written_from_a_runs_outputs(smoke_dag, tmp_path):
    from r1flow.report.readme import read_block, results_section, write_block

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- BEGIN results -->\nstale\n<!-- END results -->\nafter\n")
    write_block(readme, "results", results_section(smoke_dag.res), "python -m r1flow.report.readme --results ...")
    block = read_block(readme, "results")
    assert "stale" not in block and readme.read_text().endswith("after\n")
    assert " jobs in **" in block and "| base | chat | 32,928 |" in block and "| student_quarter |" in block
    assert "**rejection_sampling**: kept" in block and "**helpfulness_rm**: held-out accuracy" in block
    assert "| C4 Distillation beats RL on the same small model (student quarter) (§4.1, Table 6:" in block


def test_the_run_summary_says_when_the_last_run_found_jobs_up_to_date_and_the_peak_rss(tmp_path):
    import os

    from r1flow.report.readme import run_summary

    res = tmp_path / "results" / "tiny"
    (res / "report").mkdir(parents=True)
    (res / "benchmarks" / "eval").mkdir(parents=True)
    for name, s, rss, mtime in (("pretrain", 600.0, 2048, 100.0), ("eval/base", 60.0, 1024, 300.0),
                                ("report", 9.0, 512, 400.0)):
        tsv = res / "benchmarks" / f"{name}.tsv"
        tsv.write_text(f"s\th:m:s\tmax_rss\n{s}\t0:00:00\t{rss}\n")
        os.utime(tsv, (mtime, mtime))
    (res / "report" / "pipeline.json").write_text(json.dumps({"started": 50.0, "wall_s": 700.0}))
    assert run_summary(res).startswith(f"`rm -rf {res} && snakemake --cores 2` ran 3 jobs in **11 min 40 s**")
    (res / "report" / "pipeline.json").write_text(json.dumps({"started": 200.0, "wall_s": 75.0}))
    text = run_summary(res)
    assert text.startswith("the last `snakemake --cores 2` ran 2 of the 3 jobs in **1 min 15 s**")
    assert "not the wall time of a fresh run" in text and "sum to 11 min" in text
    assert "peak RSS of a job 2.0 GB" in text and "the slowest jobs: pretrain 600 s, eval/base 60 s" in text
    # the stages' own records win: a job run in the fork server leaves Snakemake only its client to measure
    for name, mb in (("pretrain", 3072.0), ("eval/base", 1024.0)):
        (res / name).mkdir(parents=True)
        (res / name / "done.json").write_text(json.dumps({"stage": name, "peak_rss_mb": mb}))
    assert "peak RSS of a job 3.0 GB" in run_summary(res)


def test_the_seeds_target_judges_the_claims_over_every_seed(smoke_dag):
    """The plumbing of the two-seed judgement: a copy of this run's results stands for seed 1's
    run (the same numbers, so the same verdicts); a seed never run is an error naming its command."""
    from r1flow.report.readme import results_section

    other, out = smoke_dag.res.parent / "smoke-seed1", smoke_dag.res / "seeds"
    shutil.copytree(smoke_dag.res, other)
    try:
        snakemake(smoke_dag.proj, "--nolock", "seeds", env=smoke_dag.env())
        claims, results = (out / "claims.md").read_text(), (out / "results.md").read_text()
        assert "over seeds 0, 1" in claims and "- here: Seed 0 (" in claims and " Seed 1 (" in claims
        single = (smoke_dag.res / "report" / "claims.md").read_text()
        assert re.findall(r"\*\*(.+?)\*\*", claims) == re.findall(r"\*\*(.+?)\*\*", single)
        assert "## Seed 0 (results/smoke)" in results and "## Seed 1 (results/smoke-seed1)" in results
        assert (out / "pass_at_1.png").stat().st_size > 5000
        section = results_section(smoke_dag.res)
        assert "Under another seed (Seed 1 (results/smoke-seed1))" in section
        assert "judged over the seeds" in section
        proc = subprocess.run([sys.executable, "-m", "r1flow.report.seeds", "--experiment", "smoke", "--seeds", "0", "2"],
                              cwd=smoke_dag.proj, capture_output=True, text=True)
        assert proc.returncode != 0 and "snakemake --cores 2 --config experiment=smoke seed=2" in proc.stderr
    finally:
        shutil.rmtree(other)
        shutil.rmtree(out, ignore_errors=True)


def test_the_generated_docs_are_current():
    from r1flow.report.readme import ROOT, read_block, stage_table

    assert read_block(ROOT / "docs" / "recipe.md", "stage-table") == stage_table(), \
        "run: python -m r1flow.report.readme"
