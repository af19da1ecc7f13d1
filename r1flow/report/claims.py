"""The paper's claims as data: each one's statement, the paper's numbers and where they stand in
DeepSeek-R1 (arXiv:2501.12948), the target this run must reach, and the check that judges it.

A check reads the evidence (every evaluated checkpoint, the RL runs' histories) and returns a
verdict — reproduced, partly, not reproduced — with the numbers behind it, or nothing when the run
lacks the checkpoints the claim needs. Held-out pass@1 "rises" only when the 95 % intervals do not
overlap; a gain is in points of held-out pass@1. Runs under several seeds are judged together by
:func:`judge_seeds`: a claim is reproduced only where it is in every seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from r1flow.harness.files import read_jsonl
from r1flow.report.results import pct, split_value, template
from r1flow.sampling.rewards import REFLECTIVE, script_of

REPRODUCED, PARTLY, NOT = "reproduced", "partly", "not reproduced"
RANK = {NOT: 0, PARTLY: 1, REPRODUCED: 2}


@dataclass
class Evidence:
    """What the checks read: rows of the results table by label, GRPO histories by run name."""

    by_label: dict[str, dict]
    runs: dict[str, list[dict]]
    students: list[str]
    checks_n: int | None = None  # validation prompts of the RL runs' checks during training


@dataclass(frozen=True)
class Claim:
    title: str  # the claim, as the report names it
    paper: str  # the paper's numbers
    cite: str  # where they stand in arXiv:2501.12948
    target: str  # what this run must show for "reproduced"
    check: Callable[[Evidence], list[tuple[str, str, str]]]  # -> [(title, verdict, evidence)]


def held(row: dict, key: str = "pass@1"):
    return row["metrics"]["splits"]["heldout"][key]


def apart(a: dict, b: dict) -> bool:
    """Held-out pass@1 of ``a`` above ``b`` with non-overlapping 95 % intervals."""
    return held(a, "pass@1_ci95")[0] > held(b, "pass@1_ci95")[1]


def gain(a: dict, b: dict) -> float:
    """Points of held-out pass@1 from ``b`` to ``a``."""
    return 100 * (held(a) - held(b))


def p1(row: dict) -> str:
    lo, hi = held(row, "pass@1_ci95")
    return f"{100 * held(row):.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def verdict(full: bool, some: bool) -> str:
    return REPRODUCED if full else PARTLY if some else NOT


def checks_of(history: list[dict]) -> list[dict]:
    return [h for h in history if "val/pass@1" in h]


def slope(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares slope of y over x and the half-width of its 95 % interval, Student's t with
    n - 2 degrees of freedom (a few validation checks: 3.18 at 5 points; 1.99 at 80) (None: < 3 points)."""
    from scipy.special import stdtrit

    n = len(points)
    if n < 3:
        return None
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    resid = sum((y - my - b * (x - mx)) ** 2 for x, y in points)
    return b, float(stdtrit(n - 2, 0.975)) * math.sqrt(resid / (n - 2) / sxx)


def series(history: list[dict], key: str) -> list[tuple[float, float]]:
    return [(h["step"], h[key]) for h in history if key in h]


def base_on(ev: Evidence, tmpl: str | None) -> dict | None:
    """The base model evaluated on template ``tmpl`` (its own row, or ``base`` if that is its template)."""
    b = ev.by_label.get(f"base_on_{tmpl}")
    base = ev.by_label.get("base")
    return b or (base if base and template(base) == tmpl else None)


def steps_of(ev: Evidence, run: str) -> int | None:
    steps = [h["step"] for h in ev.runs.get(run, []) if "reward" in h]
    return max(steps) if steps else None


def wall(row: dict) -> float:
    return row["done"].get("wall_s", 0)


def rl_over_cold_start(ev: Evidence) -> list[tuple[str, str, str]]:
    cs, rl = ev.by_label.get("cold_start_sft"), ev.by_label.get("reasoning_rl")
    if not (cs and rl):
        return []
    g = gain(rl, cs)
    return [(CLAIMS[0].title, verdict(apart(rl, cs) and g >= 15, apart(rl, cs)),
             f"cold start {p1(cs)} → reasoning_rl {p1(rl)}: {g:+.1f} points.")]


def r1_zero_learns(ev: Evidence) -> list[tuple[str, str, str]]:
    z = ev.by_label.get("r1_zero")
    b = base_on(ev, template(z)) if z else None
    if not (z and b):
        return []
    g, fz, fb = gain(z, b), held(z, "format_rate"), held(b, "format_rate")
    own = ""
    checks = [h["val/pass@1"] for h in checks_of(ev.runs.get("r1_zero", []))]
    if len(checks) > 1:
        own = f"; validation pass@1 during RL {100 * checks[0]:.1f} → {100 * checks[-1]:.1f}"
    return [(CLAIMS[1].title, verdict(apart(z, b) and g >= 15 and fz >= 0.9, apart(z, b)),
             f"both on the {template(z)} template: base {p1(b)} → r1_zero {p1(z)}, {g:+.1f} points; format "
             f"{100 * fb:.1f} % → {100 * fz:.1f} %{own}.")]


def length_grows(ev: Evidence) -> list[tuple[str, str, str]]:
    """Judged on the validation checks' mean length: the same prompts and the same sampling noise at
    every check (r1flow/train/grpo_checks.py), so the length moves only with the policy. A rollout's
    mean length also moves with its step's own prompts, a few of them on a small run (16 in the tiny
    world, where the number of terms sets an answer's length): its slope is shown beside, and judges
    a run without checks."""
    judged, text = {}, []
    for name in ("r1_zero", "reasoning_rl"):
        history = ev.runs.get(name, [])
        checks, rollouts = series(history, "val/mean_length"), series(history, "completions/mean_length")
        on_checks, on_rollouts = slope(checks), slope(rollouts)
        if not (on_checks or on_rollouts):
            continue
        judged[name] = on_checks or on_rollouts
        parts = []
        if on_checks:
            parts.append(f"validation checks {fit_text(on_checks)} ({checks[0][1]:.1f} → {checks[-1][1]:.1f} tokens "
                         f"over {len(checks)} checks)")
        if on_rollouts:
            parts.append(f"rollouts {fit_text(on_rollouts)}")
        text.append(f"{name}: " + ", ".join(parts))
    if not judged:
        return []
    grew = [name for name, (b, half) in judged.items() if b - half > 0]
    prompts = f"the same {ev.checks_n} validation prompts at each check" if ev.checks_n else "fixed validation prompts"
    return [(CLAIMS[2].title, verdict(len(grew) == 2, bool(grew)),
             f"slope of the mean response length over the steps (95 % interval; judged on the checks, {prompts}, "
             f"where a run has them): {'; '.join(text)}.")]


def fit_text(fit: tuple[float, float]) -> str:
    return f"{100 * fit[0]:+.1f} ± {100 * fit[1]:.1f} tokens per 100 steps"


def distillation_beats_rl(ev: Evidence) -> list[tuple[str, str, str]]:
    out = []
    for s in ev.students:
        d, r = ev.by_label.get(f"student_{s}"), ev.by_label.get(f"rl_only_{s}")
        if not (d and r):
            continue
        base, g = ev.by_label.get(f"base_{s}"), gain(d, r)
        start = f"from its base {p1(base)}: " if base else ""
        out.append((f"{CLAIMS[3].title} (student {s})", verdict(apart(d, r) and g >= 10, apart(d, r)),
                    f"{start}distilled {p1(d)} vs RL-only (R1-Zero's GRPO on its base, on R1-Zero's template) {p1(r)}, "
                    f"{g:+.1f} points; harder split {pct(split_value(d, 'hard'))} vs {pct(split_value(r, 'hard'))}; "
                    f"the student's training wall time {wall(d):.0f} s (SFT on the teacher's samples) vs "
                    f"{wall(r):.0f} s (RL)."))
    return out


def cold_start_helps(ev: Evidence) -> list[tuple[str, str, str]]:
    z, cs, rl = (ev.by_label.get(k) for k in ("r1_zero", "cold_start_sft", "reasoning_rl"))
    b = base_on(ev, template(z)) if z else None
    nz, nr = steps_of(ev, "r1_zero"), steps_of(ev, "reasoning_rl")
    if not (z and cs and rl and b and nz and nr):
        return []
    per_z, per_r = gain(z, b) / nz, gain(rl, cs) / nr
    faster = per_r > 0 and per_r >= 2 * per_z and nz == nr
    equal = "" if nz == nr else f" The runs took {nr} and {nz} steps: not equal, so 'faster' is not judged."
    return [(CLAIMS[4].title, verdict(faster and apart(rl, z), faster or apart(rl, z)),
             f"at {nr} and {nz} RL steps: cold start {p1(cs)} → reasoning_rl {p1(rl)}, {per_r:+.3f} points per step; "
             f"base {p1(b)} → r1_zero {p1(z)}, {per_z:+.3f} points per step (each on its own template); "
             f"training wall time: cold start + reasoning RL {wall(cs) + wall(rl):.0f} s, R1-Zero {wall(z):.0f} s; "
             f"format rate {100 * held(rl, 'format_rate'):.1f} % vs {100 * held(z, 'format_rate'):.1f} %."
             + equal + _one_script(rl["samples"]))]


def _one_script(samples: Path) -> str:
    """A note when every held-out question is in one script: then language mixing cannot show."""
    if not samples.is_file():
        return ""
    questions = {r["question"] for r in read_jsonl(samples, allow_empty=True) if r.get("split") == "heldout"}
    scripts = {script_of(w) for q in questions for w in q.split()} - {None}
    return f" Every held-out question is in one script ({scripts.pop()}), so language mixing cannot show." \
        if len(scripts) == 1 else ""


def larger_students(ev: Evidence) -> list[tuple[str, str, str]]:
    sized = sorted((ev.by_label[f"student_{s}"]["parameters"] or 0, s) for s in ev.students
                   if f"student_{s}" in ev.by_label)
    teacher = ev.by_label.get("all_scenario_rl")
    if len(sized) < 2 or not teacher:
        return []
    chain = [ev.by_label[f"student_{s}"] for _, s in sized] + [teacher]
    ordered = all(held(a) < held(b) for a, b in zip(chain, chain[1:]))
    leads = all(held(teacher) > held(c) for c in chain[:-1])
    base = ev.by_label.get("base")
    return [(CLAIMS[5].title, verdict(ordered and apart(teacher, chain[0]), leads or ordered),
             "; ".join(f"{s} ({n:,} params) {p1(ev.by_label[f'student_{s}'])}"
                       + (f", its base {p1(ev.by_label[f'base_{s}'])}" if f"base_{s}" in ev.by_label else "")
                       for n, s in sized)
             + f"; teacher ({teacher['parameters']:,} params) {p1(teacher)}"
             + (f", its base {p1(base)}." if base else "."))]


def pipeline_improves(ev: Evidence) -> list[tuple[str, str, str]]:
    final, rl = ev.by_label.get("all_scenario_rl"), ev.by_label.get("reasoning_rl")
    b = base_on(ev, "r1_zero")
    if not (final and rl and b):
        return []
    g = gain(final, b)
    up, kept = apart(final, b) and g >= 10, held(final) >= held(rl)
    return [(CLAIMS[6].title, verdict(up and kept, up or kept),
             f"base on the R1-Zero template {p1(b)} → all_scenario_rl on the chat template {p1(final)}, {g:+.1f} "
             f"points; reasoning_rl {p1(rl)}.")]


def reflective_rate(samples: Path) -> float | None:
    if not samples.is_file():
        return None
    rows = [r for r in read_jsonl(samples, allow_empty=True) if r.get("split") == "heldout"]
    return sum(bool(REFLECTIVE.search(r["response"])) for r in rows) / len(rows) if rows else None


def aha_moment(ev: Evidence) -> list[tuple[str, str, str]]:
    fits = {name: (slope(pts), pts) for name in ("r1_zero", "reasoning_rl")
            if (pts := series(ev.runs.get(name, []), "completions/reflective_rate"))}
    if not fits:
        return []
    rose = [name for name, (fit, _) in fits.items() if fit and fit[0] - fit[1] > 0]
    text = "; ".join(f"{name} {100 * pts[0][1]:.1f} % at step {pts[0][0]} → {100 * pts[-1][1]:.1f} % at step "
                     f"{pts[-1][0]}" + (f" (slope {100 * fit[0]:+.2f} ± {100 * fit[1]:.2f} points per step)" if fit else "")
                     for name, (fit, pts) in fits.items())
    refl = {lab: reflective_rate(ev.by_label[lab]["samples"]) for lab in ("base_on_r1_zero", "r1_zero", "reasoning_rl")
            if lab in ev.by_label}
    words = ", ".join(f"{lab} {100 * v:.1f} %" for lab, v in refl.items() if v is not None)
    return [(CLAIMS[7].title, verdict(bool(rose), False),
             f"rollouts with a check or reflective word, per step: {text}"
             + (f". Held-out responses with one: {words}." if words else "."))]


CLAIMS: tuple[Claim, ...] = (
    Claim("C1 Reasoning RL raises pass@1 over its cold start", "R1's reasoning RL (Figure 2 is R1-Zero's curve)",
          "§2.3.2", "≥ +15 points, intervals apart", rl_over_cold_start),
    Claim("C2 R1-Zero: RL on the base alone learns to reason", "R1-Zero AIME 2024 pass@1 15.6 → 71.0 (cons@64 86.7)",
          "§2.2.4, Table 2, Figure 2", "≥ +15 points over the base on R1-Zero's template, intervals apart; "
          "format rate ≥ 90 %", r1_zero_learns),
    Claim("C3 Responses grow longer under RL", "R1-Zero's responses grow to thousands of tokens",
          "§2.2.4, Figure 3", "the slope of the validation checks' mean response length over the steps above 0 "
          "(95 % interval) in R1-Zero and in reasoning RL", length_grows),
    Claim("C4 Distillation beats RL on the same small model", "Qwen-32B: distilled 72.6 vs RL-only 47.0 AIME pass@1",
          "§4.1, Table 6", "distilled ≥ RL-only + 10 points, intervals apart", distillation_beats_rl),
    Claim("C5 Cold start makes RL better and faster", "R1 (cold start) 79.8 vs R1-Zero 71.0 AIME; faster "
          "convergence", "§2.3.1, Tables 2 and 4", "at equal RL steps, reasoning RL gains ≥ 2× R1-Zero's points "
          "per step (each from its start, on its own template) and ends above it, intervals apart", cold_start_helps),
    Claim("C6 Larger students distil better; the teacher leads", "Qwen 1.5B 28.9 < 7B 55.5 < 14B 69.7 < 32B 72.6 "
          "AIME pass@1, R1 79.8", "§3.2, Table 5", "teacher > larger > smaller student, the teacher's interval "
          "above the smallest student's", larger_students),
    Claim("C7 The pipeline improves on its base", "DeepSeek-V3-Base → R1: AIME 2024 pass@1 up to 79.8",
          "§3.1, Table 4", "final model (chat) ≥ base (R1-Zero template) + 10 points, intervals apart, and ≥ "
          "reasoning_rl", pipeline_improves),
    Claim("C8 The aha moment: RL raises the rate of checking", "R1-Zero learns to re-evaluate its steps ('wait')",
          "§2.2.4, Table 3", "the share of rollouts that check a step rises over the steps (95 % interval)",
          aha_moment),
)


def check_claims(ev: Evidence) -> list[dict]:
    """Every claim the run can judge: its verdict and the numbers behind it."""
    return [{"claim": title, "paper": claim.paper, "cite": claim.cite, "target": claim.target, "verdict": v,
             "evidence": text} for claim in CLAIMS for title, v, text in claim.check(ev)]


def judge_seeds(per_seed: dict[int, list[dict]]) -> list[dict]:
    """The claims over runs under several seeds: each claim's verdict is its weakest over the seeds
    (a seed that could not judge it counts as not reproduced), with every seed's evidence."""
    titles = list(dict.fromkeys(c["claim"] for claims in per_seed.values() for c in claims))
    out = []
    for title in titles:
        by_seed = {seed: next((c for c in claims if c["claim"] == title), None) for seed, claims in per_seed.items()}
        first = next(c for c in by_seed.values() if c)
        verdicts = {seed: c["verdict"] if c else NOT for seed, c in by_seed.items()}
        out.append({**first, "verdict": min(verdicts.values(), key=RANK.__getitem__), "by_seed": verdicts,
                    "evidence": " ".join(f"Seed {seed} ({verdicts[seed]}): {c['evidence'] if c else 'not judged.'}"
                                         for seed, c in by_seed.items())})
    return out


def claims_markdown(claims: list[dict], seeds: list[int] | None = None) -> str:
    over = f" over seeds {', '.join(map(str, seeds))} (a claim is reproduced where it is in every seed)" if seeds else ""
    lines = [f"# The paper's claims on this run{over} (DeepSeek-R1, arXiv:2501.12948)", ""]
    for c in claims:
        lines += [f"## {c['claim']}: **{c['verdict']}**", "", f"- paper ({c['cite']}): {c['paper']}",
                  f"- target here: {c['target']}", f"- here: {c['evidence']}", ""]
    return "\n".join(lines)
