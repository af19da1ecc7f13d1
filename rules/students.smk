# Distillation (§2.4) and its baseline (§4.1). Every student is pretrained from scratch like the
# base and distilled by SFT alone on the final model's curated samples; the rl_only_students are
# also trained by RL alone from their base, as R1-Zero (Table 6's baseline: RL on Qwen-32B-Base).
# A student's rule is the teacher's with {student} in every path.

S = J.student("pretrain")


use rule pretrain as student_pretrain with:
    input: unpack(S.input)
    output: **S.output
    params: **S.params
    log: S.log
    benchmark: S.benchmark
    threads: S.threads
    priority: S.priority
    wildcard_constraints: **S.wildcards


stage_rule("distill", "A student trained by SFT alone, no RL, on the final model's curated samples (§2.4).")

S = J.student("r1_zero")


use rule r1_zero as student_r1_zero with:
    input: unpack(S.input)
    output: **S.output
    params: **S.params
    log: S.log
    benchmark: S.benchmark
    threads: S.threads
    priority: S.priority
    wildcard_constraints: **S.wildcards
