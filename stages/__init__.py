"""One entry module per stage of the R1 recipe: ``python -m stages.<name> [key=value ...]``."""
