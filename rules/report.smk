# Evaluation of every checkpoint under one eval spec (§3), then the report: the results table,
# plots, the paper's claims judged on this run, and the model registry.

job_rule("evaluate", J.evaluation(), "pass@1 over k samples (95 % interval), cons@k and pass@k of a checkpoint.")

job_rule("report", J.report(), "The results table, plots, the paper's claims on this run, and the model registry.")
