"""The report (§3, §4.1): every evaluated checkpoint in one table, plots, the paper's claims judged
on this run, and the registry.

    python -m stages.report [report.register=false]

Reads the DAG's evaluations (r1flow/dag.py names and orders them; one eval spec for every
checkpoint, checked, and an evaluation older than its checkpoint left out), the RL stages'
``history.json`` and the stages' ``done.json``/``run.json``; writes
``results.md``/``results.csv``, ``pass_at_1.png``, ``pass_at_k.png``, ``rl_curves.png``,
``distill_vs_rl.png``, ``claims.md`` (r1flow/report/claims.py), and registers the final model and
each student as versions of ``report.registered_model`` with aliases (``@r1``,
``@student-<name>``): ``python -m tracking.lineage models:/<name>@<alias>`` walks back from one.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from r1flow.harness.entry import StageContext, stage_main
from r1flow.harness.files import write_json
from r1flow.report.claims import Evidence, check_claims, claims_markdown
from r1flow.report.plots import plot_bars, plot_pass_at_1, plot_pass_at_k, plot_rl_curves
from r1flow.report.results import common_spec, family_table, split_value, table_rows, write_table
from r1flow.report.seeds import evidence

log = logging.getLogger("r1flow.report")
OUTPUTS = ("results.md", "results.csv", "claims.md", "pass_at_1.png", "pass_at_k.png", "rl_curves.png",
           "distill_vs_rl.png")


def plot_all(rows: list[dict], ev: Evidence, out: Path) -> None:
    labels = [r["label"] for r in rows]
    held = [split_value(r, "heldout") or 0 for r in rows]
    cis = [r["metrics"]["splits"].get("heldout", {}).get("pass@1_ci95") or [h, h] for h, r in zip(held, rows)]
    plot_pass_at_1(labels, held, cis, [split_value(r, "hard") or 0 for r in rows], out / "pass_at_1.png")
    plot_pass_at_k({split: {r["label"]: r["metrics"]["splits"][split]["pass_at"] for r in rows
                            if split in r["metrics"]["splits"]} for split in ("heldout", "hard")}, out / "pass_at_k.png")
    plot_rl_curves(ev.runs, out / "rl_curves.png")
    groups = [("all_scenario_rl", "teacher (R1)")] + [(f"student_{s}", f"{s}: distilled") for s in ev.students]
    groups += [(f"rl_only_{s}", f"{s}: RL only") for s in ev.students]
    groups = [(lab, name) for lab, name in groups if lab in ev.by_label]
    plot_bars([name for _, name in groups], [split_value(ev.by_label[lab], "heldout") or 0 for lab, _ in groups],
              [split_value(ev.by_label[lab], "hard") or 0 for lab, _ in groups],
              "distillation vs RL on the same small model", out / "distill_vs_rl.png")


def register(ctx: StageContext, by_label: dict[str, dict], students: list[str]) -> list[dict]:
    """The final model and each student as versions of the registered model, with their aliases."""
    from tracking.registry import register_checkpoint

    rcfg = ctx.cfg.report
    aliases = {**rcfg.aliases, **{f"student_{s}": f"student-{s}" for s in students}}
    entries = []
    for label, alias in aliases.items():
        row = by_label.get(label)
        if not row or not row["record"].get("model_id"):
            log.warning("not registering %s: no evaluated checkpoint with a logged model", label)
            continue
        entry = register_checkpoint(row["record"]["model_id"], rcfg.registered_model, alias, label)
        ctx.run.log_input_model(entry.model_id)
        entries.append(asdict(entry))
        log.info("registered %s as %s (version %s)", label, entry.uri, entry.version)
    return entries


@stage_main("report")
def main(ctx: StageContext) -> dict:
    cfg = ctx.cfg
    rows, stale, ev = evidence(cfg)
    if stale:  # a checkpoint trained again after its evaluation (e.g. a stage run by hand)
        log.warning("left out, evaluated before their checkpoint was trained again: %s", ", ".join(stale))
    if not rows:
        raise FileNotFoundError(f"no evaluated checkpoints under {cfg.results_dir}/eval (run the evaluate stages first)")
    spec = common_spec(rows)
    out = Path(ctx.out_dir)
    table = table_rows(rows)
    write_table(table, spec, out, stale, family_table(rows))
    plot_all(rows, ev, out)
    claims = check_claims(ev)
    (out / "claims.md").write_text(claims_markdown(claims))
    for name in OUTPUTS:
        ctx.run.log_artifact(str(out / name), "report")
    ctx.run.log_table(table, "report/results.json")
    registry = register(ctx, ev.by_label, ev.students) if cfg.report.register else []
    write_json(out / "registry.json", registry)
    return {"checkpoints": [t["checkpoint"] for t in table],
            "claims": {c["claim"]: c["verdict"] for c in claims},
            "registry": {e["alias"]: e["uri"] for e in registry}}


if __name__ == "__main__":
    main()
