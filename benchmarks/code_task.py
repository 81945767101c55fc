"""The code task on a checkpoint: greedy pass@1 on held-out programs (and on unseen problems of the training
programs), and how the solved episodes got there: the share that needed a second run (the first program failed a
visible example, the fix passed), and the mean number of runs.

    python benchmarks/code_task.py runs/code0/policy runs/code0_loop/policy --problems 1000
"""

from __future__ import annotations

import argparse
import json
import time

from searchlearn.loop.rounds import load_local
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.best_of_n import sample
from searchlearn.tasks.code import CodeConfig, CodeTask
from searchlearn.types import SamplingParams


def measure(path: str, problems: int, max_new_tokens: int, seed: int) -> dict:
    task = CodeTask(CodeConfig())
    policy = load_local(path)
    out = {"model": path}
    for split in ("test", "train"):
        batch = task.problems(split, problems, seed=seed + 1 if split == "test" else 999_983)
        start = time.perf_counter()
        results = sample(batch, policy, task, SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens,
                                                             seed=seed), VerifierReward(task))
        episodes = [r.trajectories[0] for r in results]
        solved = [t for t in episodes if t.reward >= 1]
        runs = [t.completion.count(" ?") for t in episodes]
        p = len(solved) / len(batch)
        out[split] = {"pass@1": round(p, 4), "se": round((p * (1 - p) / len(batch)) ** 0.5, 4),
                      "solved_on_a_later_run": round(sum(t.completion.count(" ?") > 1 for t in solved)
                                                     / max(1, len(solved)), 3),
                      "first_run_ok": round(sum(" ? ok" in t.completion.split("\n")[0] for t in episodes)
                                            / len(batch), 4),
                      "mean_runs": round(sum(runs) / len(batch), 2),
                      "seconds": round(time.perf_counter() - start, 1)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="checkpoint directories (trained with --set task_name=code)")
    p.add_argument("--problems", type=int, default=1000, help="problems per split (standard error ≈ 0.5/√n)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens per episode (observations included)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for path in args.models:
        print(json.dumps(measure(path, args.problems, args.max_new_tokens, args.seed)), flush=True)


if __name__ == "__main__":
    main()
