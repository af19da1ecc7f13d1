# The base, its R1-Zero branch, and stages 1-2 of DeepSeek-R1: cold start, then reasoning RL.

R = J.stage("pretrain")
rule pretrain:
    """The base model. The paper's is DeepSeek-V3-Base; the tiny world pretrains its own from scratch."""
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


R = J.stage("r1_zero")
rule r1_zero:
    """R1-Zero (§2.2): GRPO straight from the base, on the R1-Zero template, with rule rewards."""
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


R = J.stage("cold_start_sft")
rule cold_start_sft:
    """Stage 1 (§2.3.1): SFT of the base on a few thousand readable long-CoT examples."""
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


R = J.stage("reasoning_rl")
rule reasoning_rl:
    """Stage 2 (§2.3.2): reasoning-oriented GRPO from the cold start; accuracy, format, language rewards."""
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
