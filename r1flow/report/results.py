"""The results table: one row per evaluated checkpoint of the DAG, in the recipe's order."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from safetensors import safe_open

from r1flow.dag import DAG
from r1flow.harness.files import read_json

TABLE_HEADER = ("| checkpoint | template | params | held-out pass@1 [95 % CI] | cons@{k} | pass@{k} | harder pass@1 | "
                "general exact | safety refusal | format | length | train s |")


def count_parameters(model_dir: Path) -> int | None:
    """Parameters of a safetensors checkpoint, read from the file headers (no weights loaded)."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with safe_open(str(f), framework="numpy") as st:  # (shapes only: no torch import)
            for name in st.keys():  # noqa: SIM118 - safe_open has no __iter__
                n = 1
                for d in st.get_slice(name).get_shape():
                    n *= d
                total += n
    return total


def _json_or_empty(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


def stale(eval_dir: Path, made_by: Path | None) -> bool:
    """Whether the evaluation in ``eval_dir`` evaluated another checkpoint than the one the stage in
    ``made_by`` holds now (it trained again since): its run record names the stage's run upstream."""
    if made_by is None:
        return False
    made, record = _json_or_empty(made_by / "done.json"), _json_or_empty(eval_dir / "run.json")
    return made.get("run_id") not in record.get("upstream_run_ids", ())


def collect(dag: DAG) -> tuple[list[dict], list[str]]:
    """One row per evaluated checkpoint: its metrics, the summary and run record of the stage that
    made it, its parameter count; for an RL-only student, its cold start's summary too. Also the
    labels of the stale evaluations, which make no row."""
    rows, stale_labels = [], []
    for label, node in dag.evaluations.items():
        path = Path(dag.dir(node.key)) / "metrics.json"
        if not path.is_file():
            continue
        made_by = Path(dag.dir(node.init)) if node.init else None
        if stale(path.parent, made_by):
            stale_labels.append(label)
            continue
        model_dir = Path(dag.model(node.init))
        row = {"label": label, "metrics": read_json(path), "samples": path.parent / "samples.jsonl",
               "done": _json_or_empty(made_by / "done.json") if made_by else {},
               "record": _json_or_empty(made_by / "run.json") if made_by else {},
               "parameters": count_parameters(model_dir) if model_dir.is_dir() else None}
        rows.append(row)
    return rows, stale_labels


# what an evaluation's spec may set per checkpoint: the model, its template, and the verifiers of the
# splits it was evaluated on (a checkpoint trained on general data is graded on the general splits too)
SPEC_PER_ROW = ("model", "template", "verifiers")


def common_spec(rows: list[dict]) -> dict:
    """The eval spec every row was evaluated under (apart from SPEC_PER_ROW; ``verifiers``: those of
    every row), or a ValueError naming the rows and keys that differ: one table compares one protocol."""
    def shared(row):
        return {k: v for k, v in row["metrics"]["spec"].items() if k not in SPEC_PER_ROW}

    first = shared(rows[0])
    for row in rows[1:]:
        other = shared(row)
        keys = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        if keys:
            raise ValueError(f"the evaluations of {rows[0]['label']} and {row['label']} differ in eval spec "
                             f"{', '.join(keys)}: evaluate every checkpoint under one spec (snakemake reruns "
                             f"the evaluations when the evaluate config changes)")
    return {**first, "verifiers": sorted({v for row in rows for v in row["metrics"]["spec"].get("verifiers", ())})}


def template(row: dict) -> str | None:
    """The prompt template the row's checkpoint was evaluated on."""
    return row["metrics"].get("spec", {}).get("template")


def split_value(row: dict, split: str, key: str = "pass@1"):
    s = row["metrics"]["splits"].get(split)
    return s.get(key) if s else None


def table_rows(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        held = r["metrics"]["splits"].get("heldout", {})
        lo, hi = held.get("pass@1_ci95", [None, None])
        out.append({
            "checkpoint": r["label"],
            "template": template(r),
            "parameters": r["parameters"],
            "heldout_pass@1": held.get("pass@1"), "heldout_ci95_low": lo, "heldout_ci95_high": hi,
            "heldout_cons@k": held.get("cons@k"), "heldout_pass@k": held.get("pass@k"),
            "hard_pass@1": split_value(r, "hard"), "general_pass@1": split_value(r, "general"),
            "safety_pass@1": split_value(r, "safety"),
            "format_rate": held.get("format_rate"), "mean_length": held.get("mean_length"),
            "train_wall_s": r["done"].get("wall_s"),
        })
    return out


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown_table(table: list[dict], k: int, spec: dict) -> str:
    lines = [TABLE_HEADER.format(k=k), "|---" * TABLE_HEADER.count(" | ") + "|---|"]
    for t in table:
        ci = (f" [{pct(t['heldout_ci95_low'])}, {pct(t['heldout_ci95_high'])}]"
              if t["heldout_ci95_low"] is not None else "")
        lines.append(
            f"| {t['checkpoint']} | {t.get('template') or '–'} | {t['parameters'] or '–':,} | "
            f"{pct(t['heldout_pass@1'])}{ci} | "
            f"{pct(t['heldout_cons@k'])} | {pct(t['heldout_pass@k'])} | {pct(t['hard_pass@1'])} | "
            f"{pct(t['general_pass@1'])} | {pct(t['safety_pass@1'])} | {pct(t['format_rate'])} | "
            f"{t['mean_length'] or 0:.1f} | {t['train_wall_s'] or '–'} |")
    lines.append("")
    lines.append(f"Eval spec, the same for every row (the report checks it): k = {spec['k']}, "
                 f"T = {spec['temperature']}, top-p = {spec['top_p']}, ≤ {spec['max_new_tokens']} new tokens, "
                 f"seed {spec['seed']}, verifiers {', '.join(spec['verifiers'])}. Percentages; `template`: the "
                 "prompt (the chat template, or R1-Zero's); `train s` is the wall time of the stage that produced "
                 "the checkpoint.")
    return "\n".join(lines)


def family_table(rows: list[dict], split: str = "heldout") -> str:
    """Each checkpoint's pass@1 on ``split`` by task family, with its 95 % interval's half-width (the
    evaluation's ``per_family``); empty when the split has fewer than two families."""
    per = {r["label"]: (r["metrics"]["splits"].get(split) or {}).get("per_family", {}) for r in rows}
    fams = sorted({f for families in per.values() for f in families})
    if len(fams) < 2:
        return ""
    n = {f: next(families[f]["n_prompts"] for families in per.values() if f in families) for f in fams}
    name = "Held-out" if split == "heldout" else split.capitalize()
    lines = [f"## {name} pass@1 by task family [95 % CI half-width]", "",
             "| checkpoint | " + " | ".join(f"{f} ({n[f]} prompts)" for f in fams) + " |",
             "|---" * (len(fams) + 1) + "|"]
    for label, families in per.items():
        cells = [f"{pct(families[f]['pass@1'])} ± {50 * (families[f]['pass@1_ci95'][1] - families[f]['pass@1_ci95'][0]):.1f}"
                 if f in families else "–" for f in fams]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_table(table: list[dict], spec: dict, out: Path, stale: list[str] = (), families: str = "") -> None:
    """results.md (the table, then ``families``: ``family_table``'s) and results.csv; ``stale``: the
    evaluations left out, named under the table."""
    note = (f"\n\nLeft out, evaluated before their checkpoint was trained again (rerun them): {', '.join(stale)}."
            if stale else "")
    (out / "results.md").write_text("# Results\n\n" + markdown_table(table, spec["k"], spec) + note + "\n"
                                    + (f"\n{families}\n" if families else ""))
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)


def history(stage_dir: Path) -> list[dict]:
    """The per-step scalars a GRPO stage wrote (history.json), or none."""
    path = stage_dir / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []
