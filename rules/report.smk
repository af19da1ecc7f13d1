# Evaluation of every checkpoint under one eval spec (§3), then the report: the results table,
# plots, the paper's claims judged on this run, and the model registry.

R = J.evaluation()
rule evaluate:
    """pass@1 over k samples (95 % interval), cons@k and pass@k of checkpoint {label}."""
    wildcard_constraints: label="|".join(J.dag.evaluations)
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


R = J.report()
rule report:
    """The results table, plots, the paper's claims on this run, and the model registry."""
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
