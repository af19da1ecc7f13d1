# Curation (§2.3.3, §2.4): sample a model on the training prompts, keep the correct, readable samples.
# One set of rules serves both curation stages ({curation}: rejection_sampling samples the
# reasoning-RL model, distill_data the final model). The prompts are split into shards by a
# checkpoint, each shard is sampled by a job of its own, and a merge curates their union.

from r1flow.dag import SHARD_FILE

R = J.curation("shards")


checkpoint sample_shards:
    """The prompt shards of a curation stage (their number follows from the data)."""
    input: unpack(R.input)
    output: **R.output
    params: **R.params
    log: R.log
    benchmark: R.benchmark
    threads: R.threads
    priority: R.priority
    resources: **R.resources
    wildcard_constraints: **R.wildcards
    conda: ENV
    shell: STAGE


def sampled_shards(wildcards):
    """Every shard the checkpoint wrote (known only once it has run)."""
    shards = checkpoints.sample_shards.get(curation=wildcards.curation).output[0]
    ids = glob_wildcards(os.path.join(shards, SHARD_FILE.format("{shard}"))).shard
    return [f"{J.dag.dir(wildcards.curation, 'sample', shard)}/done.json" for shard in sorted(ids)]


job_rule("sample", J.curation("sample"), "One shard of a curation stage, sampled, verified and filtered.")

job_rule("curate", J.curation("merge", sampled_shards),
         "A curation stage's set: the union of the kept samples, its report and length histogram.")
