"""Reasoning prompts from the user's own tables (data.source=files).

``tables`` reads a JSONL, Parquet or CSV file (or a hub dataset) with Hugging Face ``datasets``,
maps its columns onto our rows and checks that every gold answer can be read by its verifier;
``splits`` assigns each problem to a split by a hash of its normalised text, so the split of a
problem never depends on the file's order or on the run, and drops training problems that overlap
an evaluation problem (exactly, or by a shared word n-gram).
"""
