"""The scaffolding every stage shares: its entry point (entry), data files (files), models
(models), code digests (code) and what the Snakefile's rules are made of (jobs)."""
