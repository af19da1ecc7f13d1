"""Every plot of the platform, in one place: the evaluate stage's pass@k curves, the RL stages'
training curves, the curation stages' length histograms, and the report's comparisons. Each writes
a PNG (logged to MLflow by its stage, and shown by ``snakemake --report``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RL_SERIES = ((("reward",), "reward (train rollouts)"), (("val/pass@1",), "validation pass@1"),
             (("completions/mean_length", "val/mean_length"), "mean response length (tokens):\nrollouts, validation checks (o)"),
             (("completions/reflective_rate",), "rollouts that check a step"))
HELDOUT, HARD = "#4C72B0", "#DD8452"


def _save(fig, path: Path, dpi: int = 110) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def plot_pass_at_k(panels: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """pass@k curves: one panel per title, one curve per series (``{k: pass@k}`` as str -> value)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels.items()):
        for name, pass_at in series.items():
            ks = sorted(int(k) for k in pass_at)
            ax.plot(ks, [pass_at[str(k)] for k in ks], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set(xlabel="k", ylabel="pass@k", ylim=(0, 1), title=title)
        ax.grid(alpha=0.3)
    many = max(len(s) for s in panels.values()) > 4
    axes[0][-1].legend(fontsize=7 if many else None, loc="upper left" if many else "best",
                       bbox_to_anchor=(1.01, 1) if many else None)
    _save(fig, path)


def plot_rl_curves(runs: dict[str, list[dict]], path: Path, title: str | None = None) -> None:
    """Reward, validation pass@1, response length (of the rollouts and of the validation checks) and
    the share of rollouts that check a step, over the steps of one or more GRPO runs; a run keeps
    its colour across the panels, validation checks are drawn with markers."""
    fig, axes = plt.subplots(1, len(RL_SERIES), figsize=(4.6 * len(RL_SERIES), 3.8))
    colours = {name: f"C{i}" for i, name in enumerate(runs)}
    for ax, (keys, label) in zip(axes, RL_SERIES):
        for name, history in runs.items():
            for key in keys:
                pts = [(h["step"], h[key]) for h in history if key in h]
                if pts:
                    xs, ys = zip(*pts)
                    check = key.startswith("val/")
                    ax.plot(xs, ys, marker="o" if check else None, lw=1.6 if check else 1.0, color=colours[name],
                            alpha=1.0 if check or len(keys) == 1 else 0.45, label=name if key == keys[0] else None)
        ax.set(title=label, xlabel="step")
        ax.grid(alpha=0.3)
    if len(runs) > 1:
        axes[-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    _save(fig, path)


def plot_lengths(report: dict, title: str, path: Path) -> None:
    """Histogram of response lengths of a curation stage's samples, kept vs dropped."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    lengths = report["lengths"]
    top = max([1, *lengths["kept"], *lengths["dropped"]])
    bins = range(0, top + 2, max(1, (top + 1) // 40))
    ax.hist([lengths["kept"], lengths["dropped"]], bins=bins, label=["kept", "dropped"], stacked=True)
    ax.set(xlabel="response length (tokens)", ylabel="samples",
           title=f"{title}: {report['kept']} of {report['sampled']} kept ({report['yield']:.0%})")
    ax.legend()
    _save(fig, path)


def plot_pass_at_1(labels: list[str], heldout: list[float], intervals: list[list[float]], hard: list[float],
                   path: Path) -> None:
    """pass@1 by checkpoint: held-out with its 95 % interval, and the harder split."""
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(labels) + 1.4))
    y = range(len(labels))
    err = [[h - lo for h, (lo, _) in zip(heldout, intervals)], [hi - h for h, (_, hi) in zip(heldout, intervals)]]
    ax.barh([i + 0.2 for i in y], heldout, height=0.4, xerr=err, label="held-out", color=HELDOUT, capsize=2)
    ax.barh([i - 0.2 for i in y], hard, height=0.4, label="harder", color=HARD)
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set(xlabel="pass@1 (95 % interval on held-out)", xlim=(0, 1), title="pass@1 by checkpoint")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    _save(fig, path)


def plot_bars(groups: list[str], heldout: list[float], hard: list[float], title: str, path: Path) -> None:
    """Held-out and harder pass@1 of a few checkpoints side by side (distillation vs RL)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    x = range(len(groups))
    for off, split, color, vals in ((-0.2, "heldout", HELDOUT, heldout), (0.2, "hard", HARD, hard)):
        ax.bar([i + off for i in x], vals, width=0.4, label=split, color=color)
    ax.set_xticks(list(x), groups, rotation=15)
    ax.set(ylabel="pass@1", ylim=(0, 1), title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_seeds(rows_by_seed: dict[int, list[dict]], path: Path) -> None:
    """Held-out pass@1 by checkpoint under each seed, with its 95 % interval."""
    labels = list(dict.fromkeys(r["label"] for rows in rows_by_seed.values() for r in rows))
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(labels) + 1.4))
    width = 0.8 / len(rows_by_seed)
    for j, (seed, rows) in enumerate(rows_by_seed.items()):
        by = {r["label"]: r["metrics"]["splits"]["heldout"] for r in rows if "heldout" in r["metrics"]["splits"]}
        shown = [(i, by[lab]) for i, lab in enumerate(labels) if lab in by]
        vals = [h["pass@1"] for _, h in shown]
        err = [[v - h["pass@1_ci95"][0] for v, (_, h) in zip(vals, shown)],
               [h["pass@1_ci95"][1] - v for v, (_, h) in zip(vals, shown)]]
        ax.barh([i - 0.4 + width * (j + 0.5) for i, _ in shown], vals, height=width, xerr=err, capsize=2,
                label=f"seed {seed}")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set(xlabel="held-out pass@1 (95 % interval)", xlim=(0, 1), title="pass@1 by checkpoint and seed")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    _save(fig, path)
