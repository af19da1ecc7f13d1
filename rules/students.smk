# Distillation (§2.4) and its baseline (§4.1). Every student is pretrained from scratch like the
# base and distilled by SFT alone on the final model's curated samples; the rl_only_students also
# get the teacher's cold start and reasoning RL. A student's rule is the teacher's with {student}
# in every path.

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

S = J.student("cold_start_sft")


use rule cold_start_sft as student_cold_start_sft with:
    input: unpack(S.input)
    output: **S.output
    params: **S.params
    log: S.log
    benchmark: S.benchmark
    threads: S.threads
    priority: S.priority
    wildcard_constraints: **S.wildcards


S = J.student("reasoning_rl")


use rule reasoning_rl as student_reasoning_rl with:
    input: unpack(S.input)
    output: **S.output
    params: **S.params
    log: S.log
    benchmark: S.benchmark
    threads: S.threads
    priority: S.priority
    wildcard_constraints: **S.wildcards
