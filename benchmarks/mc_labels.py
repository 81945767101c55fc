"""Monte-Carlo step labels against Countdown's gold labels, with and without counting a rollout that backs out of the
labelled step as its failure (`mc_labels(step_only=...)`), on the same sampled solutions. Not a test.

    python benchmarks/mc_labels.py --model runs/demo/policy --problems 64 --samples 4 --rollouts 4
"""

from __future__ import annotations

import argparse
import time

from searchlearn.policy.hf import load_policy
from searchlearn.reward.labels import mc_labels
from searchlearn.reward.pipeline import label_agreement, sample_solutions
from searchlearn.tasks.countdown import CountdownTask


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--problems", type=int, default=64)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--rollouts", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=192)
    p.add_argument("--seed", type=int, default=17)
    args = p.parse_args()
    policy, task = load_policy(args.model, backend="native"), CountdownTask()
    problems = task.problems("train", args.problems, seed=args.seed)
    problem_of, texts = sample_solutions(policy, problems, args.samples, args.max_new_tokens, args.seed)
    for step_only in (False, True):
        t0 = time.time()
        labels = mc_labels(policy, task, problem_of, texts, m=args.rollouts, max_new_tokens=args.max_new_tokens,
                           seed=args.seed + 1, step_only=step_only)
        seconds = time.time() - t0
        a = label_agreement(labels, task)
        print(f"step_only={step_only!s:5}: soft AUC {a['soft_auc']:.3f}, hard AUC {a['hard_auc']:.3f} over "
              f"{a['steps']} steps of {len(labels)} solutions, {a['steps'] / seconds:.1f} labels/s")


if __name__ == "__main__":
    main()
