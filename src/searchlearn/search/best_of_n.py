"""Best-of-N: sample N complete solutions per problem in one batched engine call, then pick one.

Selection rules: majority vote over answer keys (self-consistency, Wang et al. 2023), max reward (a verifier gives
pass@N, the oracle ceiling), and reward-weighted vote (Li et al. 2023).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Hashable, Sequence

from searchlearn.types import Ledger, Problem, SamplingParams, SearchResult, Step, Trajectory


def sample(problems: Sequence[Problem], policy, task, params: SamplingParams, reward=None) -> list[SearchResult]:
    """Draw params.n completions per problem; score them with `reward` (outcome contract) when given."""
    before = Ledger().add(policy.ledger)
    completions = policy.generate([p.prompt for p in problems], params)
    spent = Ledger().add(policy.ledger)
    for name in spent.__dataclass_fields__:
        setattr(spent, name, getattr(spent, name) - getattr(before, name))
    problem_of = [problems[c.prompt_index] for c in completions]
    rewards = reward(problem_of, completions) if reward is not None else [None] * len(completions)
    results = []
    for i, problem in enumerate(problems):
        trajectories = []
        for c, r in zip(completions[i * params.n : (i + 1) * params.n], rewards[i * params.n : (i + 1) * params.n]):
            steps = [Step(text=s) for s in task.steps(c.text)]
            trajectories.append(Trajectory(problem.id, problem.prompt, c.text, steps, c.token_ids, c.logprobs, r))
        share = Ledger(**{k: v / len(problems) for k, v in vars(spent).items()})
        results.append(SearchResult(problem.id, None, trajectories, share))
    return results


def majority_vote(keys: Sequence[Hashable | None]) -> int | None:
    """Index of the first member of the most common non-None key (ties: the key seen first); None if all abstain."""
    counts: dict[Hashable, int] = defaultdict(int)
    first: dict[Hashable, int] = {}
    for i, key in enumerate(keys):
        if key is not None:
            counts[key] += 1
            first.setdefault(key, i)
    if not counts:
        return None
    best = max(counts, key=lambda k: (counts[k], -first[k]))
    return first[best]


def weighted_vote(keys: Sequence[Hashable | None], weights: Sequence[float]) -> int | None:
    """Index of the first member of the key with the largest summed weight."""
    totals: dict[Hashable, float] = defaultdict(float)
    first: dict[Hashable, int] = {}
    for i, (key, w) in enumerate(zip(keys, weights)):
        if key is not None:
            totals[key] += w
            first.setdefault(key, i)
    if not totals:
        return None
    best = max(totals, key=lambda k: (totals[k], -first[k]))
    return first[best]


def max_reward(weights: Sequence[float | None]) -> int | None:
    scored = [(w, -i) for i, w in enumerate(weights) if w is not None]
    return -max(scored)[1] if scored else None


def select(result: SearchResult, problem: Problem, task, rule: str = "majority",
           score: Callable[[Trajectory], float] | None = None) -> Trajectory | None:
    """Pick one trajectory of a best-of-N result by `rule` in {"majority", "weighted", "max"}."""
    ts = result.trajectories
    keys = [task.answer_key(problem, t.completion) for t in ts]
    weights = [score(t) if score else t.reward for t in ts]
    if rule == "majority":
        index = majority_vote(keys)
    elif rule == "weighted":
        index = weighted_vote(keys, [w or 0.0 for w in weights])
    elif rule == "max":
        index = max_reward(weights)
    else:
        raise ValueError(f"unknown selection rule {rule!r}; use majority, weighted or max")
    return None if index is None else ts[index]
