# The base, its R1-Zero branch, and stages 1-2 of DeepSeek-R1: cold start, then reasoning RL.

stage_rule("pretrain", "The base model: the paper's is DeepSeek-V3-Base; the tiny world pretrains its own.")

stage_rule("r1_zero", "R1-Zero (§2.2): GRPO straight from the base, on the R1-Zero template, rule rewards only.")

stage_rule("cold_start_sft", "Stage 1 (§2.3.1): SFT of the base on a few thousand readable long-CoT examples.")

stage_rule("reasoning_rl", "Stage 2 (§2.3.2): GRPO from the cold start; accuracy, format, language rewards.")
