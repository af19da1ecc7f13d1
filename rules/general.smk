# Stages 3b and 4 of DeepSeek-R1: general SFT from the base on the curated samples plus non-reasoning
# data, the two reward models, and all-scenario RL (the final model, "r1").

R = J.stage("general_sft")
rule general_sft:
    """Stage 3b (§2.3.3): SFT on the rejection-sampled reasoning data and non-reasoning data."""
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


R = J.stage("helpfulness_rm")
rule helpfulness_rm:
    """Stage 4 (§2.3.4): the helpfulness reward model, pairwise, on the final summary."""
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


R = J.stage("harmlessness_rm")
rule harmlessness_rm:
    """Stage 4 (§2.3.4): the harmlessness reward model, pointwise, on the whole response."""
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


R = J.stage("all_scenario_rl")
rule all_scenario_rl:
    """Stage 4 (§2.3.4): GRPO on reasoning and general prompts; the final model."""
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
