"""The evidence of one run (what the report's claims read), and the paper's claims judged over runs
of one experiment under several seeds: a claim is reproduced only where it is in every seed.

    snakemake --cores 2                        # seed 0: results/tiny
    snakemake --cores 2 --config seed=1        # seed 1: results/tiny-seed1
    snakemake --cores 2 seeds                  # results/tiny/seeds/: claims.md, results.md, pass_at_1.png

or by hand: ``python -m r1flow.report.seeds --experiment tiny --seeds 0 1``. Every seed is evaluated
on the same problems (the data stage's generators keep ``data.seed``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import DictConfig

from r1flow.dag import DAG
from r1flow.report.claims import Evidence, check_claims, claims_markdown, judge_seeds
from r1flow.report.results import collect, common_spec, history, markdown_table, table_rows


def evidence(cfg: DictConfig) -> tuple[list[dict], list[str], Evidence]:
    """The run's rows (one per evaluated checkpoint), the stale evaluations left out, and what the
    claims read."""
    dag = DAG(cfg)
    rows, stale = collect(dag)
    by_label = {r["label"]: r for r in rows}
    runs = {name: history(Path(dag.dir(node.key))) for name, node in dag.rl_runs().items()}
    students = [s for s in dag.students() if f"student_{s}" in by_label]
    return rows, stale, Evidence(by_label, {k: v for k, v in runs.items() if v}, students, cfg.r1_zero.eval_prompts)


def seed_runs(experiment: str, seeds: list[int], overrides: list[str] = ()) -> dict[int, tuple[DictConfig, list[dict], Evidence]]:
    """Each seed's config, rows and evidence; a seed whose report is missing is an error naming the
    command that makes it."""
    from r1flow.config import compose

    out = {}
    for seed in seeds:
        cfg = compose([f"experiment={experiment}", *overrides, f"seed={seed}"])
        if not (Path(cfg.results_dir) / "report" / "done.json").is_file():
            raise FileNotFoundError(f"seed {seed}: no report under {cfg.results_dir}; run it first: "
                                    f"snakemake --cores 2 --config experiment={experiment} seed={seed}")
        rows, _, ev = evidence(cfg)
        out[seed] = (cfg, rows, ev)
    return out


def write_seeds(runs: dict[int, tuple[DictConfig, list[dict], Evidence]], out: Path) -> list[dict]:
    """claims.md (judged over every seed), results.md (each seed's table) and pass_at_1.png."""
    from r1flow.report.plots import plot_seeds

    out.mkdir(parents=True, exist_ok=True)
    claims = judge_seeds({seed: check_claims(ev) for seed, (_, _, ev) in runs.items()})
    (out / "claims.md").write_text(claims_markdown(claims, list(runs)))
    tables = []
    for seed, (cfg, rows, _) in runs.items():
        spec = common_spec(rows)
        tables += [f"## Seed {seed} ({cfg.results_dir})", "", markdown_table(table_rows(rows), spec["k"], spec), ""]
    (out / "results.md").write_text("# Results under each seed\n\n" + "\n".join(tables))
    plot_seeds({seed: rows for seed, (_, rows, _) in runs.items()}, out / "pass_at_1.png")
    return claims


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="tiny")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", help="output directory (default: the first seed's results_dir/seeds)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of every seed's config (key=value)")
    args = parser.parse_args(argv)
    runs = seed_runs(args.experiment, args.seeds, args.overrides)
    out = Path(args.out or Path(runs[args.seeds[0]][0].results_dir) / "seeds")
    for c in write_seeds(runs, out):
        print(f"{c['verdict']:>15}  {c['claim']}  ({', '.join(f'seed {s}: {v}' for s, v in c['by_seed'].items())})")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
