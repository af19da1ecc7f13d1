"""r1flow: the DeepSeek-R1 recipe (arXiv:2501.12948) as a Snakemake DAG of Lightning stages,
configured by Hydra and recorded in MLflow. The recipe's shape is r1flow/dag.py."""
