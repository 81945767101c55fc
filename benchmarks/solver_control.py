"""The control for expert iteration: its SFT rounds on fresh solver traces alone, no self-generated data.

Expert iteration in the loop (`solver_traces: 1.0`) fine-tunes on the policy's kept samples and as many fresh solver
traces. This runs the same rounds (the loop's round seeds, 60 SFT steps at lr 3e-4) on `--per-round` solver traces of
each round's training problems and nothing else, with greedy pass@1 on 500 held-out and 500 fresh training-split
problems after each round (the curve's sets, `curve.train_problems`): what part of expert iteration's gain is the
policy's own search, and what part is more supervised data?

    python benchmarks/solver_control.py --model runs/demo/ckpt/init --rounds 4 --per-round 900 --out runs/control.jsonl
"""

from __future__ import annotations

import argparse
import json
import random

from searchlearn.learn.sft import SFTConfig, trace_example, train_sft
from searchlearn.loop.rounds import CURVE_TRAIN_SEED, load_local, round_seed
from searchlearn.policy.prompts import format_problems
from searchlearn.search.evaluate import greedy_pass_at_1
from searchlearn.tasks.registry import DEFAULT_TASK


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--per-round", type=int, default=900, help="solver traces per round")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    task = DEFAULT_TASK.build()
    policy = load_local(args.model)

    def fmt(problems):
        return format_problems(problems, policy.tokenizer, task.name, "task")

    held_out = fmt(task.problems("test", 500, seed=args.seed + 1))
    seen = fmt(task.problems("train", 500, seed=CURVE_TRAIN_SEED + args.seed))
    out = open(args.out, "w")

    def probe(r: int) -> None:
        record = {"round": r, "pass@1": greedy_pass_at_1(policy, task, held_out, 288)["pass@1"],
                  "train_pass@1": greedy_pass_at_1(policy, task, seen, 288)["pass@1"]}
        out.write(json.dumps(record) + "\n")
        out.flush()
        print(record, flush=True)

    probe(0)
    for r in range(1, args.rounds + 1):
        seed = round_seed(args.seed, r)
        rng = random.Random(seed)
        examples = [trace_example(policy.tokenizer, q.prompt, task.trace_segments(q, rng))
                    for q in task.problems("train", args.per_round, seed=seed)]
        train_sft(policy.model, examples, SFTConfig(steps=60, lr=3e-4, warmup_steps=5, seed=seed),
                  policy.tokenizer.pad_id)
        policy.model.eval()
        probe(r)


if __name__ == "__main__":
    main()
