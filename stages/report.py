"""The report: every evaluated checkpoint in one table, plots, the paper's claims, the registry.

    python -m stages.report [report.register=false]

Reads ``<results>/eval/*/metrics.json`` (one eval spec for every checkpoint), the RL stages'
``history.json`` and the stages' ``done.json``/``run.json``, and writes into ``<out_dir>``:

- ``results.md`` / ``results.csv``: pass@1 with its 95 % interval, cons@k and pass@k on the
  held-out split, pass@1 on the harder, general and safety splits, parameters, training wall time;
- ``pass_at_1.png`` (by checkpoint), ``pass_at_k.png`` (curves), ``rl_curves.png`` (reward, held-out
  pass@1 and response length across the RL stages), ``distill_vs_rl.png`` (students);
- ``claims.md``: for each result of R1_RECIPE.md §6, whether the run reproduces it, with the numbers;
- the registry: the final model and each student as versions of ``report.registered_model`` with
  aliases (``@r1``, ``@student-<name>``); ``python -m tracking.lineage models:/<name>@<alias>``
  walks back from one to the cold-start data.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from safetensors import safe_open  # noqa: E402

from r1flow.datafiles import read_json, read_jsonl, write_json  # noqa: E402
from r1flow.stage import StageContext, stage_main  # noqa: E402

log = logging.getLogger("r1flow.report")
# Display order of the DAG's checkpoints; students and RL-only students follow, by name.
ORDER = ["base", "r1_zero", "cold_start_sft", "reasoning_rl", "general_sft", "all_scenario_rl"]
STUDENT_LABELS = ("base_", "student_", "rl_only_")
RL_STAGES = {"r1_zero": "r1_zero", "reasoning_rl": "reasoning_rl", "all_scenario_rl": "all_scenario_rl"}
REFLECTIVE = re.compile(r"\b(wait|check|verify|recheck|hmm|again)\b", re.I)


def count_parameters(model_dir: Path) -> int | None:
    """Parameters of a safetensors checkpoint, read from the file headers (no weights loaded)."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():  # noqa: SIM118 - safe_open has no __iter__
                n = 1
                for d in st.get_slice(name).get_shape():
                    n *= d
                total += n
    return total


def collect(results: Path) -> list[dict]:
    """One row per evaluated checkpoint: its metrics, its stage's summary and run record."""
    rows = []
    for path in sorted(results.glob("eval/*/metrics.json")):
        m = read_json(path)
        label = m.get("label") or path.parent.name
        model_dir = Path(m["spec"]["model"])
        stage_dir = model_dir.parent
        done = read_json(stage_dir / "done.json") if (stage_dir / "done.json").is_file() else {}
        record = read_json(stage_dir / "run.json") if (stage_dir / "run.json").is_file() else {}
        rows.append({"label": label, "metrics": m, "stage_dir": stage_dir, "done": done, "record": record,
                     "parameters": count_parameters(model_dir) if model_dir.is_dir() else None,
                     "samples": path.parent / "samples.jsonl"})
    rank = {name: i for i, name in enumerate(ORDER)}

    def order(label: str) -> tuple:  # the DAG's own checkpoints, then each student: base, distilled, RL-only
        for i, prefix in enumerate(STUDENT_LABELS):
            if label.startswith(prefix):
                return len(ORDER), label.removeprefix(prefix), i
        return rank.get(label, len(ORDER) + 1), label, 0

    rows.sort(key=lambda r: order(r["label"]))
    return rows


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
    lines = [f"| checkpoint | params | held-out pass@1 [95 % CI] | cons@{k} | pass@{k} | harder pass@1 | "
             "general exact | safety refusal | format | length | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in table:
        ci = (f" [{pct(t['heldout_ci95_low'])}, {pct(t['heldout_ci95_high'])}]"
              if t["heldout_ci95_low"] is not None else "")
        lines.append(
            f"| {t['checkpoint']} | {t['parameters'] or '–':,} | {pct(t['heldout_pass@1'])}{ci} | "
            f"{pct(t['heldout_cons@k'])} | {pct(t['heldout_pass@k'])} | {pct(t['hard_pass@1'])} | "
            f"{pct(t['general_pass@1'])} | {pct(t['safety_pass@1'])} | {pct(t['format_rate'])} | "
            f"{t['mean_length'] or 0:.1f} | {t['train_wall_s'] or '–'} |")
    lines.append("")
    lines.append(f"Eval spec: k = {spec['k']}, T = {spec['temperature']}, top-p = {spec['top_p']}, "
                 f"≤ {spec['max_new_tokens']} new tokens, seed {spec['seed']}, verifier `{spec['verifier']}`. "
                 "Percentages; `train s` is the wall time of the stage that produced the checkpoint.")
    return "\n".join(lines)


def history(stage_dir: Path) -> list[dict]:
    path = stage_dir / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []


def plot_pass_at_1(rows: list[dict], path: Path) -> None:
    labels = [r["label"] for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.4))
    y = range(len(rows))
    held = [split_value(r, "heldout") or 0 for r in rows]
    cis = [r["metrics"]["splits"].get("heldout", {}).get("pass@1_ci95") or [h, h] for h, r in zip(held, rows)]
    err = [[h - lo for h, (lo, _) in zip(held, cis)], [hi - h for h, (_, hi) in zip(held, cis)]]
    ax.barh([i + 0.2 for i in y], held, height=0.4, xerr=err, label="held-out", color="#4C72B0", capsize=2)
    ax.barh([i - 0.2 for i in y], [split_value(r, "hard") or 0 for r in rows], height=0.4, label="harder",
            color="#DD8452")
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xlabel("pass@1 (95 % interval on held-out)")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("pass@1 by checkpoint")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pass_at_k(rows: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, split in zip(axes, ("heldout", "hard")):
        for r in rows:
            s = r["metrics"]["splits"].get(split)
            if s:
                ks = sorted(int(k) for k in s["pass_at"])
                ax.plot(ks, [s["pass_at"][str(k)] for k in ks], marker="o", label=r["label"])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k")
        ax.set_ylim(0, 1)
        ax.set_title(split)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rl_curves(runs: dict[str, list[dict]], path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    series = [("reward", "reward (train rollouts)"), ("eval/pass@1", "held-out pass@1 (subset)"),
              ("completions/mean_length", "mean response length (tokens)")]
    for ax, (key, title) in zip(axes, series):
        for name, hist in runs.items():
            pts = [(h["step"], h[key]) for h in hist if key in h]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o" if key.startswith("eval") else None, lw=1.2, label=name)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_distill_vs_rl(by_label: dict[str, dict], students: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    groups = [("all_scenario_rl", "teacher (R1)")] + [(f"student_{s}", f"{s}: distilled") for s in students]
    groups += [(f"rl_only_{s}", f"{s}: RL only") for s in students if f"rl_only_{s}" in by_label]
    groups = [(lab, name) for lab, name in groups if lab in by_label]
    x = range(len(groups))
    for off, split, color in ((-0.2, "heldout", "#4C72B0"), (0.2, "hard", "#DD8452")):
        vals = [split_value(by_label[lab], split) or 0 for lab, _ in groups]
        ax.bar([i + off for i in x], vals, width=0.4, label=split, color=color)
    ax.set_xticks(list(x), [n for _, n in groups], rotation=15)
    ax.set_ylabel("pass@1")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    ax.set_title("distillation vs RL on the same small model")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reflective_rate(samples: Path) -> float | None:
    if not samples.is_file():
        return None
    rows = [r for r in read_jsonl(samples, allow_empty=True) if r.get("split") == "heldout"]
    return sum(bool(REFLECTIVE.search(r["response"])) for r in rows) / len(rows) if rows else None


def apart(a: dict, b: dict) -> bool:
    """Held-out pass@1 of ``a`` above ``b`` with non-overlapping 95 % intervals."""
    ca, cb = a["metrics"]["splits"]["heldout"]["pass@1_ci95"], b["metrics"]["splits"]["heldout"]["pass@1_ci95"]
    return ca[0] > cb[1]


def p1(row: dict) -> str:
    s = row["metrics"]["splits"]["heldout"]
    return f"{100 * s['pass@1']:.1f} [{100 * s['pass@1_ci95'][0]:.1f}, {100 * s['pass@1_ci95'][1]:.1f}]"


def check_claims(by_label: dict[str, dict], runs: dict[str, list[dict]], students: list[str],
                 checks_n: int | None = None) -> list[dict]:
    """Each result of R1_RECIPE.md §6 against this run: verdict and the numbers behind it.
    ``checks_n``: prompts of the RL runs' held-out checks (R1-Zero is also judged by its own)."""
    claims = []

    def claim(text, paper, verdict, evidence):
        claims.append({"claim": text, "paper": paper, "verdict": verdict, "evidence": evidence})

    b, z = by_label.get("base"), by_label.get("r1_zero")
    cs, rl = by_label.get("cold_start_sft"), by_label.get("reasoning_rl")
    if b and z and cs and rl:
        zero_up, rl_up = apart(z, b), apart(rl, cs)
        own = ""
        checks = [h["eval/pass@1"] for h in runs.get("r1_zero", []) if "eval/pass@1" in h]
        if checks_n and len(checks) > 1:  # R1-Zero on its own template, before and after (a subset)
            first, last = checks[0], checks[-1]
            p = (first + last) / 2
            margin = 1.96 * math.sqrt(max(2 * p * (1 - p), 1e-9) / checks_n)
            zero_up = zero_up or last - first > margin
            own = (f" (on its own template, {checks_n} held-out prompts: {100 * first:.1f} → {100 * last:.1f}, "
                   f"a rise counts beyond ±{100 * margin:.1f})")
        verdict = "reproduced" if zero_up and rl_up else "partly" if zero_up or rl_up else "not reproduced"
        claim("RL raises pass@1 a lot", "R1-Zero AIME 2024 pass@1 15.6 → 71.0", verdict,
              f"R1-Zero: base {p1(b)} → r1_zero {p1(z)}{own}; reasoning RL: cold start {p1(cs)} → reasoning_rl "
              f"{p1(rl)} (held-out pass@1, 95 % intervals; 'up' needs non-overlapping intervals).")
    grow = {}
    for name, hist in runs.items():
        if name == "all_scenario_rl":  # its general prompts' short answers would weigh on the mean
            continue
        lens = [h["completions/mean_length"] for h in hist if "completions/mean_length" in h]
        if len(lens) >= 10:
            n = max(1, len(lens) // 10)  # first and last tenth of the steps
            grow[name] = (sum(lens[:n]) / n, sum(lens[-n:]) / n)
    if grow:
        refl = {lab: reflective_rate(by_label[lab]["samples"]) for lab in ("cold_start_sft", "reasoning_rl", "r1_zero")
                if lab in by_label}
        grew = [name for name, (a, c) in grow.items() if c > a * 1.05]
        verdict = "reproduced" if len(grew) == len(grow) else "partly" if grew else "not reproduced"
        lengths = "; ".join(f"{name} {a:.1f} → {c:.1f} tokens" for name, (a, c) in grow.items())
        words = ", ".join(f"{lab} {100 * v:.1f} %" for lab, v in refl.items() if v is not None)
        claim("Response length grows during RL; reflective words appear",
              "R1-Zero's responses grow to thousands of tokens; 'wait' appears", verdict,
              f"mean rollout length, first vs last tenth of the steps: {lengths}. Held-out responses with a "
              f"reflective word (wait/check/verify/again): {words} — the tiny world's traces have no such words "
              "to learn, so that half of the claim cannot show here.")
    for s in students:
        d, r = by_label.get(f"student_{s}"), by_label.get(f"rl_only_{s}")
        if d and r:
            dw = d["done"].get("wall_s", 0)
            rw = r["done"].get("wall_s", 0) + r.get("cold_start_wall_s", 0)
            base = by_label.get(f"base_{s}")
            start = f"from its base {p1(base)}: " if base else ""
            claim(f"Distillation beats RL on the same small model (student {s})",
                  "Qwen-32B: distilled 72.6 vs RL-only 47.0 AIME pass@1",
                  "reproduced" if apart(d, r) else "not reproduced",
                  f"{start}distilled {p1(d)} vs RL-only (cold start + GRPO) {p1(r)}; harder split "
                  f"{pct(split_value(d, 'hard'))} vs {pct(split_value(r, 'hard'))}; training wall time "
                  f"{dw:.0f} s (SFT) vs {rw:.0f} s (cold start + RL).")
    if z and rl and "r1_zero" in runs and "reasoning_rl" in runs:
        def early(hist):
            evals = [h for h in hist if "eval/pass@1" in h]
            return evals[1]["eval/pass@1"] - evals[0]["eval/pass@1"] if len(evals) > 1 else None, \
                (evals[1]["step"] if len(evals) > 1 else None)
        (ez, sz), (er, sr) = early(runs["r1_zero"]), early(runs["reasoning_rl"])
        zf = z["metrics"]["splits"]["heldout"]["format_rate"]
        rf = rl["metrics"]["splits"]["heldout"]["format_rate"]
        better = apart(rl, z)
        claim("Cold start makes RL better and faster; R1-Zero's drawback is readability",
              "R1 (cold start) 79.8 vs R1-Zero 71.0 AIME; R1-Zero mixes languages, is hard to read",
              "reproduced" if better else "not reproduced",
              f"held-out pass@1 reasoning_rl {p1(rl)} vs r1_zero {p1(z)}; first check's gain in held-out pass@1: "
              f"{'–' if er is None else f'{100 * er:+.1f}'} points by step {sr} (from the cold start) vs "
              f"{'–' if ez is None else f'{100 * ez:+.1f}'} by step {sz} (from the base); format rate "
              f"{100 * rf:.1f} % vs {100 * zf:.1f} %. The tiny world has one language, so language mixing "
              "cannot show.")
    sized = [(by_label[f"student_{s}"]["parameters"] or 0, s) for s in students if f"student_{s}" in by_label]
    teacher = by_label.get("all_scenario_rl")
    if len(sized) >= 2 and teacher:
        sized.sort()
        vals = [split_value(by_label[f"student_{s}"], "heldout") for _, s in sized]
        ordered = all(a < b for a, b in zip(vals, vals[1:]))
        below = all(v < split_value(teacher, "heldout") for v in vals)
        claim("Larger students distil better, all below the teacher",
              "Qwen 1.5B 28.9 < 7B 55.5 < 14B 69.7 < 32B 72.6 AIME pass@1",
              "reproduced" if ordered and below else "partly" if ordered or below else "not reproduced",
              "; ".join(f"{s} ({n:,} params) {p1(by_label[f'student_{s}'])}"
                        + (f", its base {p1(by_label[f'base_{s}'])}" if f"base_{s}" in by_label else "")
                        for n, s in sized)
              + f"; teacher ({teacher['parameters']:,} params) {p1(teacher)}"
              + (f", its base {p1(by_label['base'])}." if "base" in by_label else "."))
    return claims


def claims_markdown(claims: list[dict]) -> str:
    lines = ["# R1_RECIPE.md §6 on this run", ""]
    for c in claims:
        lines += [f"## {c['claim']}: **{c['verdict']}**", "", f"- paper: {c['paper']}", f"- here: {c['evidence']}", ""]
    return "\n".join(lines)


def register(ctx: StageContext, by_label: dict[str, dict], students: list[str]) -> list[dict]:
    """The final model and each student as versions of the registered model, with their aliases."""
    from dataclasses import asdict

    from tracking.registry import register_checkpoint

    rcfg = ctx.cfg.report
    aliases = dict(rcfg.aliases)
    aliases.update({f"student_{s}": f"student-{s}" for s in students})
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
    results = Path(cfg.results_dir)
    rows = collect(results)
    if not rows:
        raise FileNotFoundError(f"no evaluated checkpoints under {results}/eval (run the evaluate stages first)")
    by_label = {r["label"]: r for r in rows}
    students = [s for s in cfg.students if f"student_{s}" in by_label]
    for s in cfg.rl_only_students:  # the RL-only baseline's compute includes its own cold start
        if f"rl_only_{s}" in by_label:
            cs = results / "students" / s / "cold_start_sft" / "done.json"
            by_label[f"rl_only_{s}"]["cold_start_wall_s"] = read_json(cs).get("wall_s", 0) if cs.is_file() else 0
    runs = {name: history(results / name) for name in RL_STAGES}
    runs.update({f"rl_only_{s}": history(results / "students" / s / "reasoning_rl") for s in cfg.rl_only_students})
    runs = {k: v for k, v in runs.items() if v}

    out = Path(ctx.out_dir)
    table = table_rows(rows)
    spec = rows[0]["metrics"]["spec"]
    (out / "results.md").write_text("# Results\n\n" + markdown_table(table, spec["k"], spec) + "\n")
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    plot_pass_at_1(rows, out / "pass_at_1.png")
    plot_pass_at_k(rows, out / "pass_at_k.png")
    plot_rl_curves(runs, out / "rl_curves.png")
    plot_distill_vs_rl(by_label, students, out / "distill_vs_rl.png")
    claims = check_claims(by_label, runs, students, cfg.r1_zero.eval_prompts)
    (out / "claims.md").write_text(claims_markdown(claims))
    for name in ("results.md", "results.csv", "claims.md", "pass_at_1.png", "pass_at_k.png", "rl_curves.png",
                 "distill_vs_rl.png"):
        ctx.run.log_artifact(str(out / name), "report")
    ctx.run.log_table(table, "report/results.json")
    registry = register(ctx, by_label, students) if cfg.report.register else []
    write_json(out / "registry.json", registry)
    return {"checkpoints": [t["checkpoint"] for t in table],
            "claims": {c["claim"]: c["verdict"] for c in claims},
            "registry": {e["alias"]: e["uri"] for e in registry}}


if __name__ == "__main__":
    main()
