# Stages 3b and 4 of DeepSeek-R1: general SFT from the base on the curated samples plus
# non-reasoning data, the two reward models, and all-scenario RL (the final model, "r1").

stage_rule("general_sft", "Stage 3b (§2.3.3): SFT on the rejection-sampled reasoning data and non-reasoning data.")

stage_rule("helpfulness_rm", "Stage 4 (§2.3.4): the helpfulness reward model, pairwise, on the final summary only.")

stage_rule("harmlessness_rm", "Stage 4 (§2.3.4): the harmlessness reward model, pointwise, on the whole response.")

stage_rule("all_scenario_rl", "Stage 4 (§2.3.4): GRPO on reasoning and general prompts; the final model.")
