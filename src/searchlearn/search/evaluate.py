"""Held-out evaluation: greedy pass@1, and from N samples per problem maj@k and pass@k for each k.

pass@k is the unbiased estimator of Chen et al. 2021, 1 − C(n−c, k)/C(n, k), with c correct of n samples.
maj@k averages majority-vote correctness over the n/k disjoint groups of k samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Sequence

from searchlearn.distributed.shard import map_problems
from searchlearn.reward.aggregate import majority_vote
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.best_of_n import sample
from searchlearn.types import Ledger, Problem, SamplingParams


@dataclass
class EvalConfig:
    problems: int = 200  # held-out problems (Countdown: their targets never appear in training)
    samples: int = 16  # N samples per held-out problem
    ks: tuple[int, ...] = (1, 4, 16)  # k of maj@k and pass@k
    temperature: float = 1.0  # sampling temperature for maj@k / pass@k
    max_new_tokens: int = 288  # completion cap (a Countdown search trace: ~130 tokens, at most ~290)

    def __post_init__(self) -> None:
        if self.problems < 1:
            raise ValueError("eval.problems must be >= 1")
        if any(k > self.samples or self.samples % k for k in self.ks):
            raise ValueError(f"every k in {self.ks} must divide samples={self.samples}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def greedy_pass_at_1(policy, task, problems: Sequence[Problem], max_new_tokens: int = 128, seed: int = 0) -> dict:
    """Greedy pass@1 of `problems` alone (what a learning curve's point needs): {"pass@1", "generated_tokens"}."""
    greedy = map_problems(sample, problems, policy, task,
                          SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed),
                          VerifierReward(task))
    return {"pass@1": sum(r.trajectories[0].reward for r in greedy) / len(problems),
            "generated_tokens": sum(r.ledger.generated_tokens for r in greedy)}


def evaluate(policy, task, problems: Sequence[Problem], n: int = 16, ks: Sequence[int] = (1, 4, 16),
             temperature: float = 1.0, max_new_tokens: int = 128, seed: int = 0) -> dict:
    """Metrics as fractions of `problems`: pass@1 (greedy), pass@k and maj@k for k in ks; plus examples."""
    if any(k > n or n % k for k in ks):
        raise ValueError(f"every k in {ks} must divide n={n}")
    reward = VerifierReward(task)
    ledger = Ledger()
    greedy = map_problems(sample, problems, policy, task,
                          SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed), reward)
    sampled = map_problems(sample, problems, policy, task,
                           SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed), reward)
    metrics = {"pass@1": sum(r.trajectories[0].reward for r in greedy) / len(problems)}
    for k in ks:
        pass_k = maj_k = 0.0
        for problem, result in zip(problems, sampled):
            correct = [t.reward >= 1.0 for t in result.trajectories]
            pass_k += pass_at_k(n, sum(correct), k)
            keys = [task.answer_key(problem, t.completion) for t in result.trajectories]
            groups = [range(g, g + k) for g in range(0, n, k)]
            votes = [majority_vote([keys[i] for i in group]) for group in groups]
            maj_k += sum(v is not None and correct[group[v]] for v, group in zip(votes, groups)) / len(groups)
        metrics[f"pass@{k}"] = pass_k / len(problems) if k > 1 else metrics["pass@1"]
        metrics[f"sample_pass@{k}"] = pass_k / len(problems)
        metrics[f"maj@{k}"] = maj_k / len(problems)
    for r in greedy + sampled:
        ledger.add(r.ledger)
    metrics["mean_tokens"] = sum(len(t.token_ids) for r in sampled for t in r.trajectories) / (n * len(problems))
    metrics["ledger/generated_tokens"] = ledger.generated_tokens
    marks = getattr(task, "step_marks", None)  # a task that can say which steps are good (Countdown)
    examples = [{"prompt": p.prompt, "completion": r.trajectories[0].completion, "reward": r.trajectories[0].reward,
                 **({"steps": marks(p, r.trajectories[0].completion)} if marks else {})}
                for p, r in zip(problems[:8], greedy[:8])]
    return {"metrics": metrics, "examples": examples}


def headline(metrics: dict, ks: Sequence[int]) -> dict:
    """The columns reports and rounds show: greedy pass@1, maj@k for each k, pass@k for each k > 1."""
    out = {"pass@1": metrics["pass@1"]}
    for k in ks:
        out[f"maj@{k}"] = metrics[f"maj@{k}"]
        if k > 1:
            out[f"pass@{k}"] = metrics[f"pass@{k}"]
    return out
