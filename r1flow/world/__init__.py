"""The embedded tiny world: reasoning-gym tasks with a step-by-step solver (tasks), a number
tokenizer (tokenizer), the pretraining corpus and SFT rows (corpus), and the non-reasoning and
preference data (preferences). Design: docs/tiny_world.md."""
