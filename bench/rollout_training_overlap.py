"""Can a GRPO rollout and a training pass share the 2 cores? The premise of one-step off-policy overlap.

    .venv/bin/python bench/rollout_training_overlap.py [--repeats 4] [--checkpoint DIR --questions FILE]

Overlapping the next rollout with the current update (veRL's and TRL's asynchronous modes) pays
only if the two can run side by side faster than one after the other. On a CPU that means one
core each, in two threads of one process. The script times the stages' own code on the rollout of
bench/grpo_vs_trl.py (16 prompts x G 8, <= 64 new tokens): sampling (``HFGenerator``, the decode
loop) and one forward and backward pass of the policy over the sampled rows
(``completion_logprobs``, prompts shared, length buckets), each alone on 2 torch threads and on 1,
then both at once, each in its own Python thread on 1 torch thread, two rounds. The sampler and the
trainer hold separate copies of the model, as an off-policy sampler would; side by side, each step
starts both and waits for both, as an overlapped loop does. Prints seconds per rollout and per
pass, and a step's wall time side by side against one after the other on 2 threads. Run it alone:
anything else on the 2 cores skews every figure.
"""

from __future__ import annotations

import argparse
import copy
import threading
import time

import torch
from grpo_vs_trl import add_rollout_args, prompt_of, setup

from r1flow.sampling.rollout import HFGenerator, SamplingParams
from r1flow.train.grpo_loss import completion_logprobs


def seconds_per_call(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_rollout_args(ap)
    ap.add_argument("--repeats", type=int, default=4, help="timed calls of each side per measurement")
    ap.add_argument("--experiment", default="tiny")
    args = ap.parse_args()
    _, items, tok, model = setup(args)
    prompts = [prompt_of(tok, args, it["question"]) for it in items[: args.prompts]]
    params = SamplingParams(n=args.group, temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens)
    generator = HFGenerator(copy.deepcopy(model).eval(), tok, progress=False)
    # the training pass's rows: one rollout, sampled once (its completions as the trainer receives them)
    groups = generator.generate(prompts, params)
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    width = max(c.length for grp in groups for c in grp)
    comp = torch.full((len(prompts) * args.group, width), tok.pad_token_id, dtype=torch.long)
    comp_mask = torch.zeros_like(comp)
    for i, c in enumerate(c for grp in groups for c in grp):
        comp[i, : c.length], comp_mask[i, : c.length] = torch.tensor(c.token_ids), 1
    ids = torch.cat([enc["input_ids"].repeat_interleave(args.group, 0), comp], 1)
    mask = torch.cat([enc["attention_mask"].repeat_interleave(args.group, 0), comp_mask], 1)
    prompt_width = enc["input_ids"].shape[1]
    model.train()

    def sample():
        generator.generate(prompts, params)

    def train_pass():
        logp, _ = completion_logprobs(model, ids, mask, prompt_width, 1.0, 16, group_size=args.group, length_buckets=4)
        (logp * mask[:, prompt_width:]).sum().backward()
        model.zero_grad(set_to_none=True)

    alone = {}
    for threads in (2, 1):
        torch.set_num_threads(threads)
        alone[threads] = (seconds_per_call(sample, args.repeats), seconds_per_call(train_pass, args.repeats))
        print(f"alone, {threads} torch thread(s): rollout {alone[threads][0]:.3f} s, training pass "
              f"{alone[threads][1]:.3f} s", flush=True)
    def in_thread(fn, seconds: list) -> threading.Thread:
        def run():
            torch.set_num_threads(1)  # this thread's OpenMP team
            t0 = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - t0)
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    one_after_the_other = sum(alone[2])
    for round_ in (1, 2):
        # the overlapped loop: each step starts the next rollout and the update together and waits for both
        rollout_s, train_s, steps = [], [], []
        for step in range(args.repeats + 1):
            t0 = time.perf_counter()
            for thread in (in_thread(sample, rollout_s), in_thread(train_pass, train_s)):
                thread.join()
            if step:  # the first is the warm-up
                steps.append(time.perf_counter() - t0)
        step_s = sum(steps) / len(steps)
        print(f"side by side, 1 torch thread each (round {round_}): rollout {sum(rollout_s[1:]) / len(steps):.3f} s, "
              f"training pass {sum(train_s[1:]) / len(steps):.3f} s; a step {step_s:.3f} s against "
              f"{one_after_the_other:.3f} s one after the other on 2 threads ({one_after_the_other / step_s:.2f}x)",
              flush=True)


if __name__ == "__main__":
    main()
