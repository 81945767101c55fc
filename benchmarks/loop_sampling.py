"""The loop's own sampling, reference engine against the fused one, on one policy in one run. Not a test.

Two workloads, each the loop's own code path on the demo's settings (DemoConfig):
  eval    `evaluate` on held-out problems: greedy pass@1 plus one sample each, as the demo's evaluation stage does;
  grpo    the GRPO round's rollouts: `sample_rollout` of prompts_per_step problems × group_size samples at T = 1,
          through the task's environment (tool calls answered inline), for `--steps` steps.
Both engines draw the same tokens (per-row streams): the script checks that the completions agree, then prints
seconds and tokens/s of each and the ratio. Engines alternate, best of `--repeats`.

    python benchmarks/loop_sampling.py runs/demo/policy [--problems 1000] [--steps 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from searchlearn.learn.rollout import sample_rollout
from searchlearn.loop.rounds import load_local
from searchlearn.recipes.demo import DemoConfig
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.evaluate import evaluate
from searchlearn.policy.prompts import format_problems
from searchlearn.types import SamplingParams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("policy", help="a checkpoint directory of the demo's format (e.g. runs/demo/policy)")
    ap.add_argument("--problems", type=int, default=1000, help="held-out problems of the eval workload")
    ap.add_argument("--steps", type=int, default=8, help="GRPO steps of rollouts")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = DemoConfig()
    task = cfg.build_task()
    policy = load_local(args.policy)
    grpo = next(p.grpo for p in cfg.phases if p.learner == "grpo")
    test = format_problems(task.problems("test", args.problems, seed=1), policy.tokenizer, task.name, cfg.prompt)
    train = format_problems(task.problems("train", grpo.prompts_per_step * args.steps, seed=0), policy.tokenizer,
                            task.name, cfg.prompt)

    def eval_work() -> tuple[int, list]:
        before = policy.ledger.generated_tokens
        out = evaluate(policy, task, test, n=1, ks=(1,), max_new_tokens=cfg.eval.max_new_tokens)
        return policy.ledger.generated_tokens - before, [out["metrics"]["pass@1"], out["metrics"]["sample_pass@1"]]

    def grpo_work() -> tuple[int, list]:
        tokens, texts = 0, []
        for step in range(args.steps):
            chunk = train[step * grpo.prompts_per_step : (step + 1) * grpo.prompts_per_step]
            params = SamplingParams(n=grpo.group_size, temperature=1.0, max_new_tokens=grpo.max_new_tokens, seed=step)
            rollout = sample_rollout(policy, chunk, VerifierReward(task), params, task.environment())
            tokens += rollout.ledger.generated_tokens
            texts += [c.text for c in rollout.completions]
        return tokens, texts

    print(f"policy {args.policy}: {policy.model.num_parameters():,} parameters, {args.threads} threads")
    print(f"{'workload':<6} {'engine':<10} {'seconds':>8} {'tokens':>9} {'tok/s':>8}")
    for name, work in (("eval", eval_work), ("grpo", grpo_work)):
        best, outputs = {}, {}
        for _ in range(args.repeats):
            for fused in (False, True):
                policy.engine.fused = fused
                t0 = time.perf_counter()
                tokens, out = work()
                seconds = time.perf_counter() - t0
                best[fused] = min(best.get(fused, (float("inf"), 0)), (seconds, tokens))
                outputs[fused] = out
        same = outputs[False] == outputs[True]
        for fused in (False, True):
            seconds, tokens = best[fused]
            print(f"{name:<6} {'fused' if fused else 'reference':<10} {seconds:8.2f} {tokens:9d} {tokens / seconds:8.0f}")
        print(f"{name:<6} speed-up {best[False][0] / best[True][0]:.2f}x; same outputs: {same}")


if __name__ == "__main__":
    main()
