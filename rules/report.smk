# Evaluation of every checkpoint under one eval spec (§3), then the report: the results table,
# plots, the paper's claims judged on this run, and the model registry.

job_rule("evaluate", J.evaluation(), "pass@1 over k samples (95 % interval), cons@k and pass@k of a checkpoint.")

job_rule("report", J.report(), "The results table, plots, the paper's claims on this run, and the model registry.")

# Not part of `all`: the claims judged over this run and other seeds' runs of the experiment, each
# made before with `snakemake --cores 2 --config seed=N` (r1flow/report/seeds.py).
job_rule("seeds", J.seeds([int(s) for s in config.get("seeds", [1])]),
         "The paper's claims judged over several seeds: reproduced only where reproduced in every seed.")
