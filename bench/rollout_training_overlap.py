"""Can a GRPO rollout and a training pass share the 2 cores? The premise of one-step off-policy overlap.

    .venv/bin/python bench/rollout_training_overlap.py [--repeats 4] [--checkpoint DIR --questions FILE]

Overlapping the next rollout with the current update (veRL's and TRL's asynchronous modes) pays
only if the two can run side by side faster than one after the other: on a 2-core CPU, one core
each. The script times the stages' own code on the rollout of bench/grpo_vs_trl.py (16 prompts x
G 8, <= 64 new tokens): sampling (``HFGenerator``, the decode loop) and one forward and backward
pass of the policy over the sampled rows (``completion_logprobs``, prompts shared, length
buckets), each alone on 2 torch threads and on 1, then both at once on 1 torch thread each, two
rounds: in two Python threads of one process, and with the sampler in a process of its own (as
veRL's and TRL's asynchronous samplers are). The sampler and the trainer hold separate copies of
the model, as an off-policy sampler would; side by side, each step starts both and waits for both,
as an overlapped loop does. Prints seconds per rollout and per pass, and a step's wall time side
by side against one after the other on 2 threads. Run it alone: anything else on the 2 cores
skews every figure.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import threading
import time

import torch
from grpo_vs_trl import add_rollout_args, prompt_of, setup

from r1flow.sampling.rollout import HFGenerator, SamplingParams
from r1flow.train.grpo import rollout_tensors
from r1flow.train.grpo_loss import completion_logprobs


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def seconds_per_call(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def workload(args):
    """(sample, train_pass): one rollout by the stages' sampler on its own copy of the policy, and one
    forward and backward log-prob pass of the policy over a rollout's rows."""
    _, items, tok, model = setup(args)
    prompts = [prompt_of(tok, args, it["question"]) for it in items[: args.prompts]]
    params = SamplingParams(n=args.group, temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens)
    generator = HFGenerator(copy.deepcopy(model).eval(), tok, progress=False)
    # the training pass's rows: one rollout, sampled once, as the stage hands it to the loss
    flat = [c for grp in generator.generate(prompts, params) for c in grp]
    ids, mask, prompt_width, cmask = rollout_tensors(tok, prompts, flat, args.group, mask_truncated=False)
    model.train()

    def sample():
        generator.generate(prompts, params)

    def train_pass():
        logp, _ = completion_logprobs(model, ids, mask, prompt_width, 1.0, 16, group_size=args.group, length_buckets=4)
        (logp * cmask).sum().backward()
        model.zero_grad(set_to_none=True)

    return sample, train_pass


def sampler_process(args, conn) -> None:
    """The sampler in a process of its own (no interpreter lock shared with the trainer): one rollout
    per message, its seconds sent back."""
    torch.set_num_threads(1)
    sample, _ = workload(args)
    while conn.recv():
        conn.send(_timed(sample))


def overlapped(args, sample, train_pass, processes: bool) -> tuple[float, float, float]:
    """Seconds of a step (and of its rollout and training pass) when each step starts the next rollout
    and the update together and waits for both, on 1 torch thread each: in two threads of this
    process, or with the sampler in a process of its own."""
    torch.set_num_threads(1)
    if processes:
        spawn = mp.get_context("spawn")
        conn, child_end = spawn.Pipe()
        child = spawn.Process(target=sampler_process, args=(args, child_end))
        child.start()

    def in_thread(fn, seconds: list) -> threading.Thread:
        def run():
            torch.set_num_threads(1)  # this thread's OpenMP team
            seconds.append(_timed(fn))
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    rollout_s, train_s, steps = [], [], []
    for step in range(args.repeats + 1):
        t0 = time.perf_counter()
        if processes:
            conn.send(True)
            train_s.append(_timed(train_pass))
            rollout_s.append(conn.recv())
        else:
            for thread in (in_thread(sample, rollout_s), in_thread(train_pass, train_s)):
                thread.join()
        if step:  # the first is the warm-up
            steps.append(time.perf_counter() - t0)
    if processes:
        conn.send(False)
        child.join()
    n = len(steps)
    return sum(steps) / n, sum(rollout_s[1:]) / n, sum(train_s[1:]) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_rollout_args(ap)
    ap.add_argument("--repeats", type=int, default=4, help="timed calls of each side per measurement")
    ap.add_argument("--experiment", default="tiny")
    args = ap.parse_args()
    sample, train_pass = workload(args)
    alone = {}
    for threads in (2, 1):
        torch.set_num_threads(threads)
        alone[threads] = (seconds_per_call(sample, args.repeats), seconds_per_call(train_pass, args.repeats))
        print(f"alone, {threads} torch thread(s): rollout {alone[threads][0]:.3f} s, training pass "
              f"{alone[threads][1]:.3f} s", flush=True)
    one_after_the_other = sum(alone[2])
    for where in ("two threads", "two processes"):
        for round_ in (1, 2):
            step_s, rollout_s, train_s = overlapped(args, sample, train_pass, processes=where == "two processes")
            print(f"side by side in {where}, 1 torch thread each (round {round_}): rollout {rollout_s:.3f} s, "
                  f"training pass {train_s:.3f} s; a step {step_s:.3f} s against {one_after_the_other:.3f} s one "
                  f"after the other on 2 threads ({one_after_the_other / step_s:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
