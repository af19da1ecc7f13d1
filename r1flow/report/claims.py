"""The paper's claims as data: each one's statement, the paper's numbers and where they stand in
DeepSeek-R1 (arXiv:2501.12948), and the check that judges this run against it.

A check reads the evidence (every evaluated checkpoint, the RL runs' histories) and returns a
verdict — reproduced, partly, not reproduced — with the numbers behind it, or nothing when the run
lacks the checkpoints the claim needs. Held-out pass@1 "rises" only when the 95 % intervals do not
overlap.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from r1flow.harness.files import read_jsonl
from r1flow.report.results import pct, split_value, template
from r1flow.sampling.rewards import script_of

REFLECTIVE = re.compile(r"\b(wait|check|verify|recheck|hmm|again)\b", re.I)
REPRODUCED, PARTLY, NOT = "reproduced", "partly", "not reproduced"


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
    check: Callable[[Evidence], list[tuple[str, str, str]]]  # -> [(title, verdict, evidence)]


def apart(a: dict, b: dict) -> bool:
    """Held-out pass@1 of ``a`` above ``b`` with non-overlapping 95 % intervals."""
    ca, cb = a["metrics"]["splits"]["heldout"]["pass@1_ci95"], b["metrics"]["splits"]["heldout"]["pass@1_ci95"]
    return ca[0] > cb[1]


def p1(row: dict) -> str:
    s = row["metrics"]["splits"]["heldout"]
    return f"{100 * s['pass@1']:.1f} [{100 * s['pass@1_ci95'][0]:.1f}, {100 * s['pass@1_ci95'][1]:.1f}]"


def either(a: bool, b: bool) -> str:
    return REPRODUCED if a and b else PARTLY if a or b else NOT


def checks_of(history: list[dict]) -> list[dict]:
    return [h for h in history if "val/pass@1" in h]


def rl_raises(ev: Evidence) -> list[tuple[str, str, str]]:
    z, cs, rl = (ev.by_label.get(k) for k in ("r1_zero", "cold_start_sft", "reasoning_rl"))
    b = ev.by_label.get(f"base_on_{template(z)}") if z else None  # the base on R1-Zero's template
    b = b or ev.by_label.get("base")
    if not (b and z and cs and rl):
        return []
    zero_up, own = apart(z, b), ""
    checks = [h["val/pass@1"] for h in checks_of(ev.runs.get("r1_zero", []))]
    if ev.checks_n and len(checks) > 1:  # R1-Zero on its own template, before and after (a subset)
        first, last = checks[0], checks[-1]
        p = (first + last) / 2
        margin = 1.96 * math.sqrt(max(2 * p * (1 - p), 1e-9) / ev.checks_n)
        zero_up = zero_up or last - first > margin
        own = (f" (on its own template, {ev.checks_n} validation prompts: {100 * first:.1f} → {100 * last:.1f}, "
               f"a rise counts beyond ±{100 * margin:.1f})")
    where = (f"both on the {template(z)} template" if template(b) == template(z) else
             f"the base on the {template(b)} template, r1_zero on the {template(z)} one")
    return [(CLAIMS[0].title, either(zero_up, apart(rl, cs)),
             f"R1-Zero: base {p1(b)} → r1_zero {p1(z)} ({where}){own}; reasoning RL: cold start {p1(cs)} → reasoning_rl "
             f"{p1(rl)} (held-out pass@1, 95 % intervals; 'up' needs non-overlapping intervals).")]


def reflective_rate(samples: Path) -> float | None:
    if not samples.is_file():
        return None
    rows = [r for r in read_jsonl(samples, allow_empty=True) if r.get("split") == "heldout"]
    return sum(bool(REFLECTIVE.search(r["response"])) for r in rows) / len(rows) if rows else None


def length_grows(ev: Evidence) -> list[tuple[str, str, str]]:
    grow = {}
    for name, hist in ev.runs.items():
        if name == "all_scenario_rl":  # its general prompts' short answers would weigh on the mean
            continue
        lens = [h["completions/mean_length"] for h in hist if "completions/mean_length" in h]
        if len(lens) >= 10:
            n = max(1, len(lens) // 10)  # first and last tenth of the steps
            grow[name] = (sum(lens[:n]) / n, sum(lens[-n:]) / n)
    if not grow:
        return []
    refl = {lab: reflective_rate(ev.by_label[lab]["samples"]) for lab in ("cold_start_sft", "reasoning_rl", "r1_zero")
            if lab in ev.by_label}
    grew = [name for name, (a, c) in grow.items() if c > a * 1.05]
    verdict = REPRODUCED if len(grew) == len(grow) else PARTLY if grew else NOT
    known = [v for v in refl.values() if v is not None]
    silent = bool(known) and not any(known)  # the held-out samples hold no reflective word
    if silent and verdict == REPRODUCED:
        verdict = PARTLY  # the lengths grew, the reflective words did not appear: half of the claim
    lengths = "; ".join(f"{name} {a:.1f} → {c:.1f} tokens" for name, (a, c) in grow.items())
    words = ", ".join(f"{lab} {100 * v:.1f} %" for lab, v in refl.items() if v is not None)
    return [(CLAIMS[1].title, verdict,
             f"mean rollout length, first vs last tenth of the steps: {lengths}. Held-out responses with a "
             f"reflective word (wait/check/verify/again): {words}"
             + (" — none writes one, so that half of the claim does not show in this run." if silent else "."))]


def distillation_beats_rl(ev: Evidence) -> list[tuple[str, str, str]]:
    out = []
    for s in ev.students:
        d, r = ev.by_label.get(f"student_{s}"), ev.by_label.get(f"rl_only_{s}")
        if not (d and r):
            continue
        dw, rw = d["done"].get("wall_s", 0), r["done"].get("wall_s", 0) + r.get("cold_start_wall_s", 0)
        base = ev.by_label.get(f"base_{s}")
        start = f"from its base {p1(base)}: " if base else ""
        out.append((f"{CLAIMS[2].title} (student {s})", REPRODUCED if apart(d, r) else NOT,
                    f"{start}distilled {p1(d)} vs RL-only (cold start + GRPO) {p1(r)}; harder split "
                    f"{pct(split_value(d, 'hard'))} vs {pct(split_value(r, 'hard'))}; training wall time "
                    f"{dw:.0f} s (SFT) vs {rw:.0f} s (cold start + RL)."))
    return out


def cold_start_helps(ev: Evidence) -> list[tuple[str, str, str]]:
    z, rl = ev.by_label.get("r1_zero"), ev.by_label.get("reasoning_rl")
    if not (z and rl and "r1_zero" in ev.runs and "reasoning_rl" in ev.runs):
        return []

    def early(hist):  # the first check's gain over the start, and its step
        evals = checks_of(hist)
        return (evals[1]["val/pass@1"] - evals[0]["val/pass@1"], evals[1]["step"]) if len(evals) > 1 else (None, None)

    (ez, sz), (er, sr) = early(ev.runs["r1_zero"]), early(ev.runs["reasoning_rl"])
    zf, rf = (row["metrics"]["splits"]["heldout"]["format_rate"] for row in (z, rl))
    return [(CLAIMS[3].title, REPRODUCED if apart(rl, z) else NOT,
             f"held-out pass@1 reasoning_rl {p1(rl)} vs r1_zero {p1(z)}; first check's gain in validation pass@1: "
             f"{'–' if er is None else f'{100 * er:+.1f}'} points by step {sr} (from the cold start) vs "
             f"{'–' if ez is None else f'{100 * ez:+.1f}'} by step {sz} (from the base); format rate "
             f"{100 * rf:.1f} % vs {100 * zf:.1f} %." + _one_script(rl["samples"]))]


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
    vals = [split_value(ev.by_label[f"student_{s}"], "heldout") for _, s in sized]
    ordered = all(a < b for a, b in zip(vals, vals[1:]))
    below = all(v < split_value(teacher, "heldout") for v in vals)
    base = ev.by_label.get("base")
    return [(CLAIMS[4].title, either(ordered, below),
             "; ".join(f"{s} ({n:,} params) {p1(ev.by_label[f'student_{s}'])}"
                       + (f", its base {p1(ev.by_label[f'base_{s}'])}" if f"base_{s}" in ev.by_label else "")
                       for n, s in sized)
             + f"; teacher ({teacher['parameters']:,} params) {p1(teacher)}"
             + (f", its base {p1(base)}." if base else "."))]


CLAIMS: tuple[Claim, ...] = (
    Claim("RL raises pass@1 a lot", "R1-Zero AIME 2024 pass@1 15.6 → 71.0 (cons@64 86.7)",
          "§2.2.4, Table 2, Figure 2", rl_raises),
    Claim("Response length grows during RL; reflective words appear",
          "R1-Zero's responses grow to thousands of tokens; 'wait' appears (the aha moment)",
          "§2.2.4, Figure 3, Table 3", length_grows),
    Claim("Distillation beats RL on the same small model", "Qwen-32B: distilled 72.6 vs RL-only 47.0 AIME pass@1",
          "§4.1, Table 6", distillation_beats_rl),
    Claim("Cold start makes RL better and faster; R1-Zero's drawback is readability",
          "R1 (cold start) 79.8 vs R1-Zero 71.0 AIME; R1-Zero mixes languages, is hard to read",
          "§2.3.1, Tables 2 and 4", cold_start_helps),
    Claim("Larger students distil better, all below the teacher",
          "Qwen 1.5B 28.9 < 7B 55.5 < 14B 69.7 < 32B 72.6 AIME pass@1", "§3.2, Table 5", larger_students),
)


def check_claims(ev: Evidence) -> list[dict]:
    """Every claim the run can judge: its verdict and the numbers behind it."""
    return [{"claim": title, "paper": claim.paper, "cite": claim.cite, "verdict": verdict, "evidence": text}
            for claim in CLAIMS for title, verdict, text in claim.check(ev)]


def claims_markdown(claims: list[dict]) -> str:
    lines = ["# The paper's claims on this run (DeepSeek-R1, arXiv:2501.12948)", ""]
    for c in claims:
        lines += [f"## {c['claim']}: **{c['verdict']}**", "", f"- paper ({c['cite']}): {c['paper']}",
                  f"- here: {c['evidence']}", ""]
    return "\n".join(lines)
