# Curation (§2.3.3, §2.4): sample a model on the training prompts, keep the correct, readable samples.
# One set of rules serves both curation stages ({curation}: rejection_sampling from the reasoning-RL
# model, distill_data from the final model). The prompts are split into shards by a checkpoint, each
# shard is sampled by a job of its own, and a merge curates their union.


R = J.curation("shards")


checkpoint sample_shards:
    """The prompt shards of a curation stage (their number follows from the data)."""
    wildcard_constraints: curation=J.curations()
    input: unpack(R.input)
    output: **R.output
    params: **R.params
    log: R.log
    benchmark: R.benchmark
    threads: R.threads
    priority: R.priority
    resources: **R.resources
    conda: ENV
    shell: STAGE


R = J.curation("sample")
rule sample:
    """One shard, sampled, verified and filtered."""
    wildcard_constraints: curation=J.curations()
    input: unpack(R.input)
    output: **R.output
    params: **R.params
    log: R.log
    benchmark: R.benchmark
    threads: R.threads
    priority: R.priority
    resources: **R.resources
    conda: ENV
    shell: STAGE


def sampled_shards(wildcards):
    """Every shard the checkpoint wrote (known only once it has run)."""
    shards = checkpoints.sample_shards.get(curation=wildcards.curation).output[0]
    ids = glob_wildcards(os.path.join(shards, "prompts_{shard}.jsonl")).shard
    return expand(f"{J.res}/{wildcards.curation}/samples/{{shard}}/done.json", shard=sorted(ids))


R = J.curation("merge")
rule curate:
    """The curated set: the union of the kept samples, its report and length histogram."""
    wildcard_constraints: curation=J.curations()
    input: unpack(R.input), shards=sampled_shards
    output: **R.output
    params: **R.params
    log: R.log
    benchmark: R.benchmark
    threads: R.threads
    priority: R.priority
    resources: **R.resources
    conda: ENV
    shell: STAGE
