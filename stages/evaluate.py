"""Evaluate any checkpoint: k samples per held-out prompt, verified by the task's own verifier.

    python -m stages.evaluate io.init_model=results/tiny/cold_start_sft/model io.label=cold_start_sft
    python -m stages.evaluate io.init_model=Qwen/Qwen2.5-Math-1.5B experiment=qwen_math evaluate.k=16

Output (``io.out_dir``, default ``<results>/eval/<label>``): metrics.json (pass@1 with its 95%
interval, cons@k, pass@k, format rate, mean length — overall, per split, per family — and the eval
spec), samples.jsonl, and a pass@k plot; all logged to the stage's MLflow run.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from r1flow.datafiles import file_digest, read_jsonl, write_json, write_jsonl  # noqa: E402
from r1flow.evaluation import evaluate_split  # noqa: E402
from r1flow.models import load_model, load_tokenizer  # noqa: E402
from r1flow.rollout import HFGenerator, SamplingParams  # noqa: E402
from r1flow.stage import StageContext, stage_main  # noqa: E402
from r1flow.tasks import ITEM_KEYS  # noqa: E402
from r1flow.tokenizer import render_prompt  # noqa: E402


def eval_spec(ecfg, model_path: str) -> dict:
    import reasoning_gym
    import transformers

    return {
        "k": ecfg.k, "temperature": ecfg.temperature, "top_p": ecfg.top_p,
        "max_new_tokens": ecfg.max_new_tokens, "seed": ecfg.seed, "template": ecfg.template,
        "verifier": ecfg.verifier, "model": model_path,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "reasoning_gym": getattr(reasoning_gym, "__version__", "unknown")},
    }


def plot_pass_at_k(metrics: dict, label: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for split, m in metrics["splits"].items():
        ks = sorted(int(k) for k in m["pass_at"])
        ax.plot(ks, [m["pass_at"][str(k)] for k in ks], marker="o", label=f"{split} (n={m['n_prompts']})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k")
    ax.set_ylim(0, 1)
    ax.set_title(f"pass@k — {label}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@stage_main("evaluate")
def main(ctx: StageContext) -> dict:
    cfg, ecfg = ctx.cfg, ctx.cfg.evaluate
    model_path = cfg.io.init_model or f"{cfg.results_dir}/cold_start_sft/model"
    label = cfg.io.label or Path(model_path).parent.name
    tok = load_tokenizer(model_path, cfg.model.trust_remote_code)
    model = load_model(model_path, cfg.model, cfg.trainer.accelerator)
    if torch.cuda.is_available() and cfg.trainer.accelerator in ("gpu", "cuda", "auto"):
        model = model.cuda()
    generator = HFGenerator(model, tok, prompts_per_batch=ecfg.prompts_per_batch,
                            progress=cfg.trainer.enable_progress_bar)
    params = SamplingParams(n=ecfg.k, temperature=ecfg.temperature, top_p=ecfg.top_p,
                            max_new_tokens=ecfg.max_new_tokens)
    metrics: dict = {"splits": {}}
    all_rows: list[dict] = []
    for split in ecfg.splits:
        path = Path(cfg.io.data_dir) / f"{split}.jsonl"
        items = read_jsonl(path, required=ITEM_KEYS)
        if ecfg.max_prompts:
            items = items[: ecfg.max_prompts]
        ctx.run.log_dataset(str(path), name=f"{cfg.name}/{split}", digest=file_digest(path), context="eval",
                            num_rows=len(items))
        prompts = [render_prompt(tok, it["question"], ecfg.template) for it in items]
        torch.manual_seed(ecfg.seed)
        m, rows = evaluate_split(generator, items, prompts, params, desc=f"eval {label}/{split}")
        metrics["splits"][split] = m
        all_rows += [{"split": split, **r} for r in rows]
        flat = {f"eval/{split}/{k}": v for k, v in m.items() if isinstance(v, int | float)}
        flat.update({f"eval/{split}/{fam}/pass@1": fm["pass@1"] for fam, fm in m["per_family"].items()})
        ctx.run.log_metrics(flat)
    primary = metrics["splits"][ecfg.splits[0]]
    metrics.update({k: v for k, v in primary.items() if k != "per_family"})
    metrics["per_family"] = primary["per_family"]
    metrics["primary_split"] = ecfg.splits[0]
    metrics["label"] = label
    metrics["spec"] = eval_spec(ecfg, model_path)
    out = Path(ctx.out_dir)
    write_jsonl(out / "samples.jsonl", all_rows)
    plot_pass_at_k(metrics, label, out / "pass_at_k.png")
    ctx.run.log_dict(metrics["spec"], "eval_spec.json")
    ctx.run.log_table(all_rows[:2000], "samples.json")
    ctx.run.log_artifact(str(out / "pass_at_k.png"))
    write_json(out / "metrics.json", metrics)  # the rule's completion file: written last
    ctx.run.log_artifact(str(out / "metrics.json"))
    return {"pass@1": metrics["pass@1"], "cons@k": metrics["cons@k"], "pass@k": metrics["pass@k"]}


if __name__ == "__main__":
    main()
