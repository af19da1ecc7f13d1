"""The runner of the curation stages: sample a model on the training prompts, verify, filter, keep.

Shared by ``stages.rejection_sampling`` (stage 3a of R1: the reasoning-RL checkpoint's samples for
general SFT) and ``stages.distill_data`` (the final model's samples for distilling students); they
differ in their config section (``sampler``: the stage whose model is sampled, an edge of the
stage table; ``dataset``: the curated set's MLflow name).

Samples ``n`` completions for each training prompt, verifies them with the task's verifier (the one
RL and evaluation use), drops truncated, unsummarised, wrong, mixed-language, long-paragraph,
code-block and repetitive samples, de-duplicates, and keeps at most ``max_per_prompt`` per prompt
(r1flow/sampling/curation.py).

Under Snakemake the work is sharded: ``io.part=shards`` writes ``shards/prompts_<i>.jsonl`` (a
Snakemake checkpoint: the number of shards follows from the data), ``io.part=sample
io.shard=<file>`` samples one shard (one job each, in parallel on a cluster), ``io.part=merge``
curates the union. By hand (``io.part=all``, the default) the three run in one process. Each
shard draws from its own random stream (``shard_seed``: the run's seed, the stage and the shard's
name), so the samples are the same whether the shards run as jobs or in one process. The shards
and merge jobs are light: the sampler's modules (torch, transformers) are imported where a
model is sampled, not by this module.

Output: ``<out_dir>/reasoning_sft.jsonl`` (chat rows for SFT), ``report.json`` (kept and dropped
per filter and per family), ``lengths.png``.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from r1flow.dag import SHARD_FILE, shard_name
from r1flow.harness.entry import StageContext
from r1flow.harness.files import file_digest, read_json, read_jsonl, write_json, write_jsonl
from r1flow.report.plots import plot_lengths
from r1flow.sampling.curation import FilterLimits, curate, merge_reports, sft_row
from r1flow.sampling.prompts import item_prompt, think_prefill, user_content
from r1flow.sampling.verify import ITEM_KEYS

log = logging.getLogger("r1flow.curation")
SHARDS, SAMPLES, OUTPUT = "shards", "samples", "reasoning_sft.jsonl"


def write_shards(ctx: StageContext, out: Path) -> list[Path]:
    """Split the training prompts into shards ``out/prompts_<i>.jsonl``."""
    items = read_jsonl(ctx.data_file("train"), required=ITEM_KEYS)
    rs = ctx.cfg[ctx.stage]
    if rs.max_prompts:
        items = items[: rs.max_prompts]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, start in enumerate(range(0, len(items), rs.shard_size)):
        paths.append(out / SHARD_FILE.format(f"{i:03d}"))
        write_jsonl(paths[-1], items[start : start + rs.shard_size])
    return paths


def load_sampler(ctx: StageContext):
    """(tokenizer, generator) of the model to sample from (the ``sampler`` stage's export)."""
    from r1flow.harness.models import load_tokenizer, sampler_of  # (torch: not for the light parts)

    cfg = ctx.cfg
    tok = load_tokenizer(ctx.init, cfg.model.trust_remote_code)
    think_prefill(tok)  # a template without a generation prompt fails here, before any compute
    return tok, sampler_of(ctx, cfg[ctx.stage].rollout, tok, progress=True)


def shard_seed(seed: int, stage: str, shard: Path) -> int:
    """The seed of a shard's sampling: distinct per stage and shard, fixed by the run's seed."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{stage}:{shard_name(shard)}".encode()).digest()[:4], "big")


def sample_shard(ctx: StageContext, shard: Path, out: Path, sampler=None) -> dict:
    """Sample, verify and curate one shard; write its kept rows and report into ``out``.
    ``sampler``: a loaded (tokenizer, generator), so one process sampling every shard loads once."""
    import torch

    from r1flow.sampling.rollout import SamplingParams

    section = ctx.stage
    rs = ctx.cfg[section]
    items = read_jsonl(shard, required=ITEM_KEYS)
    tok, generator = sampler or load_sampler(ctx)
    params = SamplingParams(n=rs.n, temperature=rs.temperature, top_p=rs.top_p, max_new_tokens=rs.max_new_tokens)
    torch.manual_seed(shard_seed(ctx.cfg.seed, ctx.stage, shard))  # (vLLM draws its request seeds from this generator too)
    groups = generator.generate([item_prompt(tok, it) for it in items], params, desc=f"{section} {shard_name(shard)}")
    samples = [{"item": it, "prompt_content": user_content(it), "response": c.text, "truncated": c.truncated,
                "length": c.length} for it, grp in zip(items, groups) for c in grp]
    limits = FilterLimits(rs.min_language, rs.max_paragraph_words, rs.max_repetition)
    kept, report = curate(samples, limits, rs.max_per_prompt)
    kept_ids = {id(s) for s in kept}
    report["lengths"] = {"kept": [s["length"] for s in kept],
                         "dropped": [s["length"] for s in samples if id(s) not in kept_ids]}
    prefill = think_prefill(tok)
    write_jsonl(out / "kept.jsonl", [sft_row(s, prefill) for s in kept])
    write_json(out / "report.json", report)
    return report


def merge(ctx: StageContext, root: Path) -> dict:
    shards = sorted((root / SHARDS).glob(SHARD_FILE.format("*")))
    if not shards:
        raise FileNotFoundError(f"no prompt shards in {root / SHARDS} (run io.part=shards first)")
    missing = [s for s in shards if not (root / SAMPLES / shard_name(s) / "report.json").is_file()]
    if missing:
        raise FileNotFoundError(f"unsampled shards: {', '.join(map(str, missing))}")
    rows, reports = [], []
    for s in shards:
        rows += read_jsonl(root / SAMPLES / shard_name(s) / "kept.jsonl", allow_empty=True)
        reports.append(read_json(root / SAMPLES / shard_name(s) / "report.json"))
    report = merge_reports(reports)
    report["lengths"] = {k: sorted(x for r in reports for x in r["lengths"][k]) for k in ("kept", "dropped")}
    section, out = ctx.stage, Path(ctx.out_dir)
    path = out / OUTPUT
    write_jsonl(path, rows)
    plot_lengths(report, section.replace("_", " "), out / "lengths.png")
    summary = {k: v for k, v in report.items() if k != "lengths"}
    write_json(out / "report.json", summary)
    run = ctx.run
    run.log_dataset(str(path), name=f"{ctx.cfg.name}/{ctx.cfg[section].dataset}", digest=file_digest(path),
                    context="train", num_rows=len(rows))
    run.log_metrics({"rs/sampled": report["sampled"], "rs/kept": report["kept"], "rs/yield": report["yield"],
                     "rs/prompts_with_a_kept_sample": report["prompts_with_a_kept_sample"],
                     **{f"rs/dropped/{k}": v for k, v in report["dropped"].items()}})
    run.log_dict(summary, f"{section}/report.json")
    run.log_table([{"family": f, **c} for f, c in report["by_family"].items()], f"{section}/by_family.json")
    run.log_artifact(str(out / "lengths.png"))
    log.info("kept %d of %d samples (%.1f%%); dropped %s", report["kept"], report["sampled"],
             100 * report["yield"], report["dropped"])
    return {"kept": report["kept"], "sampled": report["sampled"], "yield": report["yield"],
            "dataset_digest": file_digest(path)}


def run_curation(ctx: StageContext) -> dict:
    """The part ``io.part`` of the curation stage (see the module docstring)."""
    part, out = ctx.cfg.io.part, Path(ctx.out_dir)
    if part == "shards":  # (each part writes its own directory; the merge reads theirs under the stage's)
        return {"shards": len(write_shards(ctx, out))}
    if part == "sample":
        if not ctx.cfg.io.shard:
            raise ValueError("config error: io.shard: io.part=sample needs the shard file to sample")
        report = sample_shard(ctx, Path(ctx.cfg.io.shard), out)
        return {"kept": report["kept"], "sampled": report["sampled"]}
    if part == "all":
        sampler = load_sampler(ctx)
        for shard in write_shards(ctx, out / SHARDS):
            sample_shard(ctx, shard, out / SAMPLES / shard_name(shard), sampler)
        return merge(ctx, out)
    return merge(ctx, ctx.home)
