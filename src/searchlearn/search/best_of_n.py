"""Best-of-N: sample N complete solutions per problem in one batched engine call, then pick one.

The answer is chosen by `select` (search/steps.py `choose`): a majority vote over answer keys (self-consistency,
Wang et al. 2023; the scorer is not called), or the scorer's path scores as weights (reward-weighted vote, Li et al.
2023) or as a ranking ("max": with a verifier as the scorer, pass@N, the oracle ceiling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from searchlearn.env.rollout import EpisodeLimits, run_episodes
from searchlearn.reward.aggregate import AGGREGATES, aggregate
from searchlearn.search.budget import Accounts, Budget
from searchlearn.search.steps import SELECT_RULES, SearchConfig, choose
from searchlearn.types import (
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
    environment (`task.environment()`, e.g. Countdown with a tool) is sampled as multi-turn episodes."""
    make_env = task.environment() if hasattr(task, "environment") else None
    if make_env is not None:
        return _sample_episodes(problems, policy, task, params, reward, make_env)
    accounts = Accounts(len(problems), params.n * params.max_new_tokens)  # each problem charged its own tokens
    completions = accounts.generate(policy, [p.prompt for p in problems], range(len(problems)), params)
    problem_of = [problems[c.prompt_index] for c in completions]
    rewards = reward(problem_of, completions) if reward is not None else [None] * len(completions)
    results = []
    for i, problem in enumerate(problems):
        trajectories = []
        for c, r in zip(completions[i * params.n : (i + 1) * params.n], rewards[i * params.n : (i + 1) * params.n]):
            steps = [Step(text=s) for s in task.steps(c.text)]
            trajectories.append(Trajectory(problem.id, problem.prompt, c.text, steps, c.token_ids, c.logprobs, r))
        results.append(SearchResult(problem.id, None, trajectories, accounts.ledgers[i]))
    return results


EPISODE_TURNS = 64  # model turns per episode when sampling through an environment (a tool call is one turn)


def _sample_episodes(problems, policy, task, params: SamplingParams, reward, make_env) -> list[SearchResult]:
    """`sample` through the task's environment: each trajectory is an episode, its tokens the model's turns and the
    environment's observations (mask False); each problem is charged its own episodes' model tokens (generated) and
    prompt + observation tokens (read without being generated)."""
    episodes = run_episodes(policy, problems, make_env, replace(params, stop=()),
                            EpisodeLimits(max_turns=EPISODE_TURNS, max_tokens=params.max_new_tokens))
    texts = [e.text for e in episodes]
    problem_of = [problems[e.problem_index] for e in episodes]
    rewards = reward(problem_of, texts) if reward is not None else [e.reward for e in episodes]
    results = []
    for i, problem in enumerate(problems):
        ledger, trajectories = Ledger(), []
        for e, r in zip(episodes[i * params.n : (i + 1) * params.n], rewards[i * params.n : (i + 1) * params.n]):
            ledger.charge_policy(e.model_tokens + (e.finish == "done"), len(e.prompt_ids) + len(e.mask) - e.model_tokens,
                                 policy.n_params)
            trajectories.append(Trajectory(problem.id, problem.prompt, e.text, [Step(text=s) for s in task.steps(e.text)],
                                           e.token_ids, e.logprobs, r, mask=e.mask))
        results.append(SearchResult(problem.id, None, trajectories, ledger))
    return results
