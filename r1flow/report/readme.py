"""Generated sections of the documentation, so that no figure or table is copied by hand.

    python -m r1flow.report.readme                          # docs/config.md and the stage table of docs/recipe.md
    python -m r1flow.report.readme --results results/tiny   # and the README's results, from that run

A generated section sits between ``<!-- BEGIN <name> ... -->`` and ``<!-- END <name> -->`` markers;
everything outside them is left as it is.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

from r1flow.config.reference import reference
from r1flow.dag import STAGES, Kind

ROOT = Path(__file__).resolve().parents[2]


def write_block(path: Path, name: str, content: str, command: str) -> None:
    """Replace the block ``name`` of ``path`` with ``content`` (the markers must be there)."""
    text = path.read_text()
    begin = re.compile(rf"<!-- BEGIN {name}\b[^>]*-->\n")
    end = f"<!-- END {name} -->"
    m = begin.search(text)
    if not m or end not in text[m.end():]:
        raise ValueError(f"{path}: no block {name!r} (markers <!-- BEGIN {name} --> ... {end})")
    stop = text.index(end, m.end())
    head = f"<!-- BEGIN {name}: written by `{command}`; do not edit -->\n"
    path.write_text(text[: m.start()] + head + content.rstrip() + "\n" + text[stop:])


def read_block(path: Path, name: str) -> str:
    text = path.read_text()
    m = re.search(rf"<!-- BEGIN {name}\b[^>]*-->\n(.*?)<!-- END {name} -->", text, re.S)
    return m.group(1) if m else ""


def stage_table() -> str:
    """The stage table of r1flow/dag.py as markdown."""
    lines = ["| stage | paper | starts from | also reads | writes | evaluated as | students | job class |",
             "|---|---|---|---|---|---|---|---|"]
    for s in STAGES:
        init = f"`{s.init}` (a knob)" if s.knob else s.init or "–"
        label = ", ".join(x for x in (s.evaluated.label, s.evaluated.student_label) if x) if s.evaluated else "–"
        if s.kind is Kind.evaluate:
            label = "every checkpoint"
        writes = "the data files its readers read (`DAG.data_files`)" if s.kind is Kind.data else ", ".join(s.outputs)
        lines.append(f"| `{s.name}` ({s.kind}) | {s.paper} | {init} | {', '.join(s.reads) or '–'} | "
                     f"{writes or '–'} | {label} | {s.students or '–'} | {s.resources} |")
    return "\n".join(lines) + "\n"


def _benchmarks(res: Path) -> list[tuple[str, float, float, float]]:
    """(job, seconds, max RSS MB, when it ended) of every job's last benchmarked run."""
    rows = []
    for tsv in sorted((res / "benchmarks").rglob("*.tsv")):
        with open(tsv) as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        rows.append((str(tsv.relative_to(res / "benchmarks").with_suffix("")), float(row["s"]),
                     float(row["max_rss"]) if row.get("max_rss", "NA") != "NA" else 0.0, tsv.stat().st_mtime))
    return rows


def run_summary(res: Path) -> str:
    """Wall time, jobs, memory and the slowest jobs of the last run that ended with the report; when that
    run found some jobs' outputs up to date, it says so and how long every job took when it last ran."""
    run = json.loads((res / "report" / "pipeline.json").read_text())
    every = _benchmarks(res)
    ran = sum(ended >= run["started"] for *_, ended in every)
    slow = ", ".join(f"{name} {s:.0f} s" for name, s, *_ in sorted(every, key=lambda j: -j[1])[:4])
    minutes, seconds = divmod(round(run["wall_s"]), 60)
    wall = f"**{minutes} min {seconds} s** of wall time"
    if ran == len(every):
        head = f"`rm -rf {res} && snakemake --cores 2` ran {ran} jobs in {wall}"
    else:
        head = (f"the last `snakemake --cores 2` ran {ran} of the {len(every)} jobs in {wall} (the others' "
                f"outputs were up to date: this is not the wall time of a fresh run); the {len(every)} jobs' own "
                f"times sum to {sum(j[1] for j in every) / 60:.0f} min")
    return f"{head}; peak RSS of a job {peak_rss_mb(res, every) / 1024:.1f} GB; the slowest jobs: {slow}."


def peak_rss_mb(res: Path, every: list[tuple[str, float, float, float]]) -> float:
    """The largest peak RSS the stages recorded (done.json), else Snakemake's benchmarks' (which see
    only the client of a job run in the fork server)."""
    recorded = [json.loads(p.read_text()).get("peak_rss_mb") for p in res.rglob("done.json")]
    recorded = [mb for mb in recorded if mb]
    return max(recorded) if recorded else max(j[2] for j in every)


def facts(res: Path) -> str:
    """Curation yields and reward-model accuracies of the run."""
    lines = []
    for stage in (s for s in STAGES if s.kind is Kind.curation):
        path = res / stage.name / "report.json"
        if path.is_file():
            r = json.loads(path.read_text())
            lines.append(f"- **{stage.name}**: kept {r['kept']:,} of {r['sampled']:,} samples ({100 * r['yield']:.1f} %); "
                         f"{r['prompts_with_a_kept_sample']:,} of {r['prompts']:,} prompts keep at least one.")
    for stage in (s for s in STAGES if s.kind is Kind.reward_model):
        path = res / stage.name / "done.json"
        if path.is_file():
            acc = json.loads(path.read_text())["heldout"]
            kinds = ", ".join(f"{k} {v:.2f}" for k, v in acc["by_rejected_kind"].items())
            lines.append(f"- **{stage.name}**: held-out accuracy {acc['accuracy']:.2f} on {acc['pairs']} pairs ({kinds}).")
    return "\n".join(lines)


def claims_table(claims_md: Path) -> str:
    text = claims_md.read_text()
    rows = re.findall(r"^## (.+?): \*\*(.+?)\*\*\n\n- paper \((.+?)\): (.+?)\n- target here: (.+?)\n- here: (.+?)$",
                      text, re.M)
    lines = ["| claim (paper) | target here | verdict | here |", "|---|---|---|---|"]
    lines += [f"| {c} ({cite}: {paper}) | {target} | **{v}** | {here} |" for c, v, cite, paper, target, here in rows]
    return "\n".join(lines)


def results_section(res: Path) -> str:
    """The run's summary, table and facts; with a ``seeds`` judgement (r1flow/report/seeds.py), the
    other seeds' tables and the claims over every seed, else the claims of this run."""
    table = (res / "report" / "results.md").read_text().split("\n", 2)[2]  # without its title
    table = re.sub(r"^## ", "### ", table, flags=re.M)  # its sections sit under the README's results section
    parts = [run_summary(res), table.strip(), facts(res)]
    seeds = res / "seeds"
    if (seeds / "claims.md").is_file():
        others = [part.partition("\n") for part in (seeds / "results.md").read_text().split("\n## ")[2:]]
        parts += [f"Under another seed ({head}):\n\n{table.strip()}" for head, _, table in others]
        parts += [f"The paper's claims, judged over the seeds ({seeds}/claims.md; a claim is reproduced only where it "
                  "is in every seed):", claims_table(seeds / "claims.md")]
    else:
        parts += [f"The paper's claims, judged on this run ({res}/report/claims.md):", claims_table(res / "report" / "claims.md")]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m r1flow.report.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="a finished run's results dir: write the README's results")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    (ROOT / "docs" / "config.md").write_text(reference())
    write_block(ROOT / "docs" / "recipe.md", "stage-table", stage_table(), "python -m r1flow.report.readme")
    if args.results:
        write_block(args.readme, "results", results_section(args.results),
                    f"python -m r1flow.report.readme --results {args.results}")


if __name__ == "__main__":
    main()
