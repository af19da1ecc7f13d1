"""Prompts, splits and the corpora of the embedded world (written by the data stage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from r1flow.config.knobs import AnswerFormat, Source, knob


@dataclass
class FamilyConfig:
    """One reasoning-gym family: its generator parameters for the train/held-out splits and for the
    harder held-out split that measures generalisation (e.g. more terms)."""

    name: str = knob(MISSING, "reasoning-gym dataset name, e.g. chain_sum.")
    weight: float = knob(1.0, "Share of the split's items drawn from this family (normalised over families).")
    params: dict[str, Any] = knob({}, "Generator parameters of the train and held-out splits.")
    hard_params: dict[str, Any] = knob({}, "Generator parameters of the harder held-out split.")
    top_words: int = knob(0, "General families: keep items whose words are all among the K most frequent (0: all).")


@dataclass
class ColumnsConfig:
    """Which column of a table holds what (the names of the user's file)."""

    problem: str = knob("problem", "Column holding the question.")
    answer: str = knob("answer", "Column holding the gold final answer (see answer_pattern).")
    solution: str | None = knob(None, "Column holding a worked solution, written as the cold-start trace "
                                "(null: this file gives no cold-start data). May be the answer column itself "
                                "(GSM8K): the trace is then the text before answer_pattern's match.")
    id: str | None = knob(None, "Column holding a stable row id (null: a hash of the problem).")


@dataclass
class FileSourceConfig:
    """A table of problems and answers read with Hugging Face ``datasets``: a local JSONL, Parquet or
    CSV file (or a directory / glob of them), or a hub dataset id on a machine with a network."""

    path: str = knob(MISSING, "Local file, directory or glob; or a hub dataset id (e.g. openai/gsm8k).")
    format: str = knob("auto", "json, parquet or csv; auto: from the file extension (a hub id: the hub's).")
    subset: str | None = knob(None, "Hub dataset configuration name (e.g. main for openai/gsm8k).")
    split: str = knob("train", "Split of the dataset to read (a local file is one 'train' split).")
    columns: ColumnsConfig = knob(ColumnsConfig(), "Column mapping.")
    answer_pattern: str | None = knob(None, "Regular expression whose first group is the final answer inside "
                                      "the answer column (GSM8K: '####\\s*(.+?)\\s*$'); null: the whole column.")
    verifier: str = knob("math", "How answers are checked (r1flow/sampling/verify.py): math, numeric, exact, "
                         "reasoning_gym.")
    family: str | None = knob(None, "Family name of its rows in reports (null: the file's stem).")
    max_rows: int = knob(0, "Rows read at most, in file order (0: all).")
    max_unparseable: float = knob(0.01, "Largest share of gold answers the verifier may fail to parse "
                                  "before the data stage stops with examples.")


@dataclass
class GeneralFilesConfig:
    """Non-reasoning data from files (each null: the embedded world's, when data.general_families is set)."""

    sft: str | None = knob(None, "General SFT rows: JSONL of chat 'messages' ending with the assistant's turn.",
                           paper="~200k non-reasoning samples (§2.3.3)")
    helpfulness: str | None = knob(None, "Helpfulness preference pairs: JSONL of prompt, chosen, rejected.")
    harmlessness: str | None = knob(None, "Harmlessness pairs: JSONL of prompt, chosen (safe), rejected (unsafe).")
    safety: str | None = knob(None, "Prompts that must be refused: JSONL with a 'prompt' column "
                              "(all-scenario RL's safety prompts).")


@dataclass
class DataConfig:
    """Reasoning prompts of every split, the cold-start set, non-reasoning tasks and, for a model
    built from scratch, the tokenizer and the pretraining corpus."""

    source: Source = knob(Source.reasoning_gym, "Where reasoning prompts come from: reasoning_gym (families) "
                          "or files (files, hard_path).")
    families: list[FamilyConfig] = knob([], "Reasoning-gym families (source=reasoning_gym), conf/data/*.yaml.")
    files: FileSourceConfig | None = knob(None, "The table of problems (source=files); presets: conf/data/gsm8k.yaml, "
                                          "conf/data/math.yaml.")
    hard_path: str | None = knob(None, "A table of harder problems in data.files' layout (columns, answer pattern, "
                                 "verifier): the hard split (source=files; null: no hard split).")
    answer_format: AnswerFormat = knob(AnswerFormat.tags, "How a response gives its final answer: the prompt "
                                       "asks for it, the format reward, curation and evaluation read it.",
                                       paper="<answer> tags (Table 1)")
    validation_permille: int = knob(50, "Share of the problems (by hash, disjoint from held-out) in the validation "
                                    "splits, per mille: what the GRPO stages' in-training checks (and so sweep "
                                    "objectives) read, so that held-out is read only by evaluation (0: none).")
    n_validation: int = knob(500, "Validation prompts at most (validation_permille > 0).")
    n_general_validation: int = knob(100, "Non-reasoning validation prompts (the embedded world's "
                                          "general_validation split).")
    decontamination_ngram: int = knob(13, "Training rows sharing a word n-gram of this length with an evaluation "
                                      "row are dropped (and counted in decontamination.json); 0: exact only.")
    general_files: GeneralFilesConfig = knob(GeneralFilesConfig(), "Non-reasoning data from files.")
    heldout_permille: int = knob(150, "Share of the expression space (by hash) that is held out, per mille.")
    max_abs: int = knob(99, "Drop items whose solution leaves the tokenizer's integer range.")
    n_train: int = knob(4000, "RL and rejection-sampling prompts.")
    n_heldout: int = knob(1000, "Held-out evaluation prompts (1,000: pass@1's 95 % interval is about +-2 points).")
    n_hard: int = knob(400, "Prompts of the harder held-out split.")
    n_cold_start: int = knob(2000, "Cold-start SFT examples, distinct from the RL prompts.",
                             paper="thousands of long-CoT examples (§2.3.1)")
    hurried_frac: float = knob(0.0, "Share of the world's worked traces (pretraining chains, question/answer text, "
                               "cold-start answers) written hurriedly: two operations per line, as people skip "
                               "steps. All are correct; a model writing them is right less often.")
    check_frac: float = knob(0.0, "Share of the world's careful worked traces (pretraining chains, question/answer "
                             "text, cold-start answers) that check one step: after a rewrite, a line 'check: a op b "
                             "= v' restates its operation as a fact (the form pretraining teaches best), and the "
                             "rewrite is written again from it. 0 in the tiny world: there responses that check are "
                             "right less often, and R1-Zero unlearns checking (docs/tiny_world.md, C8).",
                             paper="R1-Zero learns to re-evaluate its steps, the 'aha moment' (§2.2.4)")
    check_fix_frac: float = knob(0.5, "Of the checked traces, the share whose checked rewrite was first written with "
                                 "a slip (its new value off by 1 or 2) that the check catches.")
    general_families: list[FamilyConfig] = knob([], "Non-reasoning families (general SFT, all-scenario RL), "
                                                "answered directly without a CoT.",
                                                paper="~200k non-reasoning samples; trivial queries get no CoT (§2.3.3)")
    n_general_train: int = knob(2000, "Non-reasoning training prompts.")
    n_general_heldout: int = knob(300, "Non-reasoning held-out prompts (the general split).")
    pretrain_docs: int = knob(40000, "Documents of the pretraining corpus (model.init=scratch only).")
    pretrain_fact_frac: float = knob(0.4, "Share of documents that are arithmetic facts 'a op b = c'.")
    pretrain_fact_max_a: int = knob(45, "Facts 'a + b' and 'a - b' draw a from [-max_a, max_a] ('a * b': [-20, 20]).")
    pretrain_fact_max_b: int = knob(9, "Facts 'a + b' and 'a - b' draw b from [0, max_b] ('a * b': [0, 9]). How many "
                                    "distinct facts there are to learn (1,820 at the defaults): at 19 with max_a 99 "
                                    "(7,580) the teacher's base knew 42 % of them, the medium and small students' 8 "
                                    "and 1 % (15 and 5 % at the teacher's 3,000 steps; python -m "
                                    "r1flow.world.reading --facts; docs/tiny_world.md).")
    pretrain_qa_frac: float = knob(0.01, "Share of documents that are question/answer text: a training question "
                                   "and its worked rewrites in plain layouts (r1flow/world/corpus.py QA_LAYOUTS), "
                                   "half of them dialogues with R1's tags; no chat template. A little exposure to a "
                                   "context is what lets RL transfer to it (docs/tiny_world.md).")
    pretrain_general_frac: float = knob(0.0, "Share of documents that are word lists: a list, then the same list "
                                        "reversed (general items without their instructions).")
    pretrain_stated_frac: float = knob(0.0, "Share of rewrite chains preceded by their expression on a line of its "
                                       "own: the copying that a worked answer starts with.")
    pretrain_max_terms: int = knob(5, "Most terms of a rewrite chain in the pretraining corpus.")
    pretrain_ops: str = knob("+-*", "Operators of the pretraining corpus.")
    seed: int = knob(1234, "Seed of every generator of the data stage.")
