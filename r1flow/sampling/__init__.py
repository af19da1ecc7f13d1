"""Sampling a model and judging what it writes: prompts, rollout backends, verification, rewards,
evaluation metrics and the curation filters of rejection sampling."""
