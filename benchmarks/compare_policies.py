"""Two Countdown checkpoints on the same problems, greedy: each one's pass@1, the problems one solves and the other
does not (a paired comparison: its standard error is √(lost + gained) / n), and what their traces do per problem
(try lines, "back" lines, traces cut by the token budget without an answer, tokens).

    python benchmarks/compare_policies.py runs/init0_tool_c5_long/policy runs/curves_edge/grpo_seed0/policy \\
        --checks tool --corrections 0.5 --problems 1000 --split test
"""

from __future__ import annotations

import argparse
import json

from searchlearn.loop.rounds import load_local
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.best_of_n import sample
from searchlearn.tasks.countdown import CountdownConfig, CountdownTask
from searchlearn.types import SamplingParams


def trace_stats(trajectories) -> dict:
    lines = [t.completion.split("\n") for t in trajectories]
    n = len(trajectories)
    return {"tries": round(sum(sum(x.startswith("try") for x in ls) for ls in lines) / n, 3),
            "backs": round(sum(sum(x.startswith("back") for x in ls) for ls in lines) / n, 3),
            "no_answer": round(sum(not any(x.startswith("answer") for x in ls) for ls in lines) / n, 3),
            "tokens": round(sum(len(t.token_ids) for t in trajectories) / n, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--problems", type=int, default=1000)
    p.add_argument("--split", choices=("test", "train"), default="test", help="held-out targets or the training "
                   "split (the problems benchmarks/countdown_tool.py draws for each)")
    p.add_argument("--checks", default="need")
    p.add_argument("--corrections", type=float, default=0.2)
    p.add_argument("--max-new-tokens", type=int, default=400)
    args = p.parse_args()
    task = CountdownTask(CountdownConfig(checks=args.checks, corrections=args.corrections))
    batch = task.problems(args.split, args.problems, seed=1 if args.split == "test" else 999_983)
    runs = []
    for path in (args.a, args.b):
        results = sample(batch, load_local(path), task, SamplingParams(n=1, temperature=0.0,
                         max_new_tokens=args.max_new_tokens, seed=0), VerifierReward(task))
        runs.append([r.trajectories[0] for r in results])
    lost = sum(x.reward > y.reward for x, y in zip(*runs))
    gained = sum(x.reward < y.reward for x, y in zip(*runs))
    n = len(batch)
    print(json.dumps({"split": args.split, "problems": n,
                      **{name: {"pass@1": sum(t.reward for t in ts) / n, **trace_stats(ts)}
                         for name, ts in zip(("a", "b"), runs)},
                      "lost": lost, "gained": gained, "paired_se": round((lost + gained) ** 0.5 / n, 4)}))


if __name__ == "__main__":
    main()
