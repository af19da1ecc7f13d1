# r1flow — the DeepSeek-R1 recipe (arXiv:2501.12948) as a Snakemake DAG.
#
#   snakemake --cores 2                                  # the embedded default (experiment=tiny)
#   snakemake --cores 2 --config experiment=smoke        # seconds-scale version of the same graph
#   snakemake --profile profiles/slurm --config experiment=qwen_math
#
# The recipe's shape — every stage, its edges, outputs and resources — is declared once, in the
# stage table (r1flow/dag.py); the rules below take their directives from it. Snakemake owns paths
# and scheduling, Hydra (conf/) every hyperparameter, MLflow the lineage.

from snakemake.utils import min_version

min_version("9.0")


include: "rules/common.smk"
include: "rules/reasoning.smk"
include: "rules/curation.smk"
include: "rules/general.smk"
include: "rules/students.smk"
include: "rules/report.smk"


rule all:
    """Every checkpoint evaluated, and the report."""
    input: J.targets()
