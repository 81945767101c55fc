"""Best-of-N: sample N complete solutions per problem in one batched engine call, then pick one.

The answer is chosen by `select` (search/steps.py `choose`): a majority vote over answer keys (self-consistency,
Wang et al. 2023; the scorer is not called), or the scorer's path scores as weights (reward-weighted vote, Li et al.
2023) or as a ranking ("max": with a verifier as the scorer, pass@N, the oracle ceiling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from searchlearn.env.rollout import sample_episodes
from searchlearn.reward.aggregate import AGGREGATES, aggregate
from searchlearn.search.budget import Accounts, Budget
from searchlearn.search.steps import SELECT_RULES, SearchConfig, choose
from searchlearn.types import (
    Completion,
    Ledger,
    Problem,
    SamplingParams,
    SearchResult,
    Step,
    Trajectory,
)


@dataclass
class BestOfNConfig(SearchConfig):
    select: str = "majority"  # the answer among the N samples: majority | weighted | max
    aggregate: str = "last"  # how a sample's step scores weigh it (weighted, max)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.select not in SELECT_RULES:
            raise ValueError(f"select must be one of {', '.join(SELECT_RULES)}, got {self.select!r}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")


def best_of_n(problems: Sequence[Problem], policy, task, scorer, budget: Budget, cfg: BestOfNConfig | None = None
              ) -> list[SearchResult]:
    """budget.n samples per problem in one engine call; the answer by `cfg.select` (the scorer runs only for the
    weighted and max rules, its tokens charged to each problem's ledger)."""
    cfg = cfg or BestOfNConfig()
    params = SamplingParams(n=budget.n, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    results = sample(problems, policy, task, params)
    if cfg.select != "majority" and scorer is not None:
        accounts = Accounts(len(problems), budget.cap(cfg.max_new_tokens))
        flat = [(p, t) for p, r in enumerate(results) for t in r.trajectories]
        scores = accounts.score(scorer, [problems[p] for p, _ in flat], [t.steps for _, t in flat],
                                [p for p, _ in flat])
        for (_, t), s in zip(flat, scores):
            t.reward = aggregate(s, cfg.aggregate)
        for result, spent in zip(results, accounts.ledgers):
            result.ledger.add(spent)
    for problem, result in zip(problems, results):
        index = choose(problem, task, result.trajectories, cfg.select)
        result.answer = None if index is None else result.trajectories[index].completion
    return results


def sample(problems: Sequence[Problem], policy, task, params: SamplingParams, reward=None) -> list[SearchResult]:
    """Draw params.n completions per problem; score them with `reward` (outcome contract) when given. A task with an
    environment (`task.environment()`, e.g. Countdown with a tool) is sampled as multi-turn episodes, whose
    trajectories carry the mask of the environment's observations."""
    make_env = task.environment() if hasattr(task, "environment") else None
    if make_env is None:
        accounts = Accounts(len(problems), params.n * params.max_new_tokens)  # each problem charged its own tokens
        completions = accounts.generate(policy, [p.prompt for p in problems], range(len(problems)), params)
        ledgers = accounts.ledgers
    else:
        completions = sample_episodes(policy, problems, make_env, params)
        ledgers = _episode_ledgers(policy, problems, completions, params.n)
    problem_of = [problems[c.prompt_index] for c in completions]
    rewards = reward(problem_of, completions) if reward is not None else [None] * len(completions)
    results = []
    for i, problem in enumerate(problems):
        trajectories = []
        for c, r in zip(completions[i * params.n : (i + 1) * params.n], rewards[i * params.n : (i + 1) * params.n]):
            steps = [Step(text=s) for s in task.steps(c.text)]
            trajectories.append(Trajectory(problem.id, problem.prompt, c.text, steps, c.token_ids, c.logprobs, r,
                                           mask=c.mask))
        results.append(SearchResult(problem.id, None, trajectories, ledgers[i]))
    return results


def _episode_ledgers(policy, problems: Sequence[Problem], completions: Sequence[Completion], n: int) -> list[Ledger]:
    """Each problem's own episodes: the tokens the model sampled (generated) and the prompt and observation tokens
    it read without generating them (prefilled)."""
    prompt_tokens = [len(ids) for ids in policy.encode_prompts([p.prompt for p in problems])]
    ledgers = [Ledger() for _ in problems]
    for c in completions:
        sampled = sum(c.mask)
        ledgers[c.prompt_index].charge_policy(sampled + (c.finish_reason == "eos"),
                                              prompt_tokens[c.prompt_index] + len(c.mask) - sampled, policy.n_params)
    return ledgers
