"""The root of the config tree: one section per stage, plus the world, the students and the paths.

A stage's section is named after the stage (r1flow/dag.py). Stages that share a schema differ by
the default instance given here, in one place (e.g. ``r1_zero`` is GRPO with the R1-Zero template).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r1flow.config.base import ModelConfig, ResourcesConfig, TrainerConfig
from r1flow.config.data import DataConfig
from r1flow.config.knobs import Part, RMMode, RMTarget, Template, knob
from r1flow.config.rl import GRPOConfig
from r1flow.config.sampling import CurationConfig, EvalConfig
from r1flow.config.training import (
    GeneralSFTConfig,
    MixedSFTConfig,
    PretrainConfig,
    RewardModelConfig,
    SFTConfig,
)


@dataclass
class ReportConfig:
    """The closing stage: results table and plots of every evaluated checkpoint, the paper-claims
    check, and the model registry (one registered model, an alias per checkpoint)."""

    registered_model: str = knob("r1flow-${name}", "Registered model the checkpoints become versions of.")
    aliases: dict[str, str] = knob({"all_scenario_rl": "r1"}, "Checkpoint label -> registry alias "
                                   "(each distilled student also gets student-<name>).")
    register: bool = knob(True, "Register the checkpoints (false: only the table, plots and claims).")


@dataclass
class IOConfig:
    """Paths. Snakemake passes them on the command line; by hand they default to the DAG's own
    locations (r1flow/dag.py), so a stage run by hand (or a sweep) reads the DAG's upstream outputs."""

    data_dir: str = knob("${results_dir}/data", "The data stage's output directory.")
    init_model: str | None = knob(None, "Model to start from, or to evaluate (a directory or hub id); "
                                  "default: the stage table's edge.")
    out_dir: str | None = knob(None, "Output directory; default: results_dir/<stage>.")
    upstream: dict[str, str] = knob({}, "Upstream stage -> its output directory: what the stage reads, and its "
                                    "lineage (set it with ++io.upstream={stage:dir,...}); default: the stage "
                                    "table's edges.")
    label: str | None = knob(None, "evaluate: the checkpoint's label (default model: that label's checkpoint).")
    part: Part = knob(Part.all, "Curation stages: which part runs (all, shards, sample, merge).")
    shard: str | None = knob(None, "Curation stages, part=sample: the prompt shard to sample.")


@dataclass
class RootConfig:
    name: str = knob("tiny", "Experiment name: results/<name>/, MLflow experiment r1flow/<name>.")
    seed: int = knob(0, "Seed of every stage (Lightning's seed_everything and the samplers); the data stage's "
                     "generators keep data.seed, so every seed is evaluated on the same problems.")
    results_dir: str = knob("results/${name}${r1flow.seed_suffix:${seed}}", "Where the DAG writes: results/<name>, "
                            "or results/<name>-seed<N> for a seed N other than 0.")
    model: ModelConfig = knob(ModelConfig(), "The policy model (conf/model/).")
    data: DataConfig = knob(DataConfig(), "Prompts and corpora (conf/data/).")
    trainer: TrainerConfig = knob(TrainerConfig(), "Lightning Trainer (conf/trainer/).")
    resources: ResourcesConfig = knob(ResourcesConfig(), "Cluster resources of each job class.")
    pretrain: PretrainConfig = knob(PretrainConfig(), "The embedded world's base model.")
    r1_zero: GRPOConfig = knob(GRPOConfig(template=Template.r1_zero,
                                          rewards={"accuracy": 1.0, "format": 1.0, "language": 0.0}),
                               "R1-Zero: GRPO from the base with its own template, accuracy and format rewards.",
                               paper="§2.2, Table 1")
    cold_start_sft: SFTConfig = knob(SFTConfig(), "Stage 1: SFT of the base on readable long-CoT examples.",
                                     paper="§2.3.1")
    reasoning_rl: GRPOConfig = knob(GRPOConfig(), "Stage 2: reasoning-oriented GRPO from the cold start.",
                                    paper="§2.3.2")
    rejection_sampling: CurationConfig = knob(CurationConfig(), "Stage 3a: samples of the reasoning-RL model, "
                                              "verified and filtered.", paper="§2.3.3")
    general_sft: GeneralSFTConfig = knob(GeneralSFTConfig(), "Stage 3b: SFT on the curated samples plus "
                                         "non-reasoning data.", paper="§2.3.3")
    helpfulness_rm: RewardModelConfig = knob(RewardModelConfig(), "Stage 4: the helpfulness reward model.",
                                             paper="pairwise, on the final summary (§2.3.4)")
    harmlessness_rm: RewardModelConfig = knob(
        RewardModelConfig(mode=RMMode.pointwise, target=RMTarget.response,
                          train_data="${io.data_dir}/harmlessness_train.jsonl",
                          heldout_data="${io.data_dir}/harmlessness_heldout.jsonl"),
        "Stage 4: the harmlessness reward model.", paper="on the whole response (§2.3.4)")
    all_scenario_rl: GRPOConfig = knob(
        GRPOConfig(temperature=0.7, general_prompt_frac=0.5, general_last_steps=400,
                   general_rewards={"helpfulness_rm": 1.0, "harmlessness_rm": 1.0, "format": 1.0, "language": 1.0}),
        "Stage 4: GRPO on reasoning and general prompts, the general ones scored by the reward models.",
        paper="§2.3.4; temperature 0.7 (v2)")
    distill_data: CurationConfig = knob(CurationConfig(sampler="all_scenario_rl", dataset="distillation"),
                                        "The final model's curated samples, to distil students on.",
                                        paper="~800k samples (§2.4)")
    distill: MixedSFTConfig = knob(MixedSFTConfig(), "SFT of a student on the distillation data.",
                                   paper="SFT only, no RL (§2.4)")
    evaluate: EvalConfig = knob(EvalConfig(), "Evaluation of every checkpoint.", paper="§3")
    report: ReportConfig = knob(ReportConfig(), "Results table, plots, paper claims, registry.")
    students: dict[str, dict[str, Any]] = knob({}, "Student name -> model overrides of a smaller model of the "
                                               "same family, pretrained from scratch and distilled; one line "
                                               "each, e.g. {small: {hidden_size: 64, intermediate_size: 256}}; "
                                               "a 'pretrain' key overrides the pretrain section for it "
                                               "(pretrain: {max_steps: 600}).",
                                               paper="Qwen2.5 1.5B-32B, Llama 8B/70B (§2.4, Table 5)")
    rl_only_students: list[str] = knob([], "Students also trained by RL alone from their base (the r1_zero stage: "
                                       "R1-Zero's GRPO and template): distillation vs RL on one model.",
                                       paper="§4.1, Table 6 (RL on Qwen-32B-Base, no SFT)")
    student: str | None = knob(None, "The student a stage run is for: its model is model + students[student].")
    io: IOConfig = knob(IOConfig(), "Paths.")
