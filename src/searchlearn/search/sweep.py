"""Strategies × budgets on held-out problems: the test-time scaling curves (accuracy against generated tokens).

Every row is `{"strategy", "budget", "accuracy", "generated_tokens", "reward_tokens", ...}`, tokens as the mean per
problem from the searchers' ledgers. Best-of-N samples max(budgets) completions once and reads every smaller N off
their prefixes (the first N samples of each problem), giving three rows per budget: "bon_majority",
"bon_weighted" (vote weighted by the scorer's last-step score, Li et al. 2023) and "pass@n" (some sample is right:
the oracle ceiling). The other searchers run once per budget (report/curves.py plots the rows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from searchlearn.distributed.shard import WithPolicy, map_problems
from searchlearn.env.tool_policy import with_tools
from searchlearn.reward.aggregate import (
    AGGREGATES,
    aggregate,
    majority_vote,
    weighted_vote,
)
from searchlearn.reward.scorers import make_scorer
from searchlearn.search.budget import Accounts, Budget, generated_tokens
from searchlearn.search.registry import SEARCHERS
from searchlearn.search.steps import completion_steps
from searchlearn.types import Completion, Ledger, Problem, SamplingParams, SearchResult


@dataclass
class SweepConfig:
    strategies: tuple[str, ...] = ("bon", "beam", "dvts", "mcts")  # searchers (search/registry.py)
    budgets: tuple[int, ...] = (4, 16, 64)  # budget n of each strategy (best-of-N units, see search/budget.py)
    scorer: str = "confidence"  # guides the searches: confidence | selfeval | gold (an oracle) | learned:DIR
    aggregate: str = "last"  # how a path's step scores rank it (beam, DVTS, BoN weights)
    width: int = 4  # beam/DVTS width M and MCTS expansion k
    sequential: int = 4  # revision: attempts per chain
    temperature: float = 1.0  # sampling temperature of every strategy
    max_new_tokens: int = 128  # completion cap
    step_tokens: int = 64  # most tokens in one step (a Countdown try line: up to ~55; raise it for math paragraphs)
    seed: int = 0  # seeds every search

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in SEARCHERS]
        if unknown or not self.strategies:
            raise ValueError(f"unknown strategies {unknown}; use some of {', '.join(SEARCHERS.names())}")
        if not self.budgets or min(self.budgets) < 1:
            raise ValueError(f"budgets must be positive integers, got {self.budgets}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}")


def sweep(policy, task, problems: Sequence[Problem], cfg: SweepConfig,
          on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """All rows of the sweep; `on_row` sees each row as it is made (for progress output)."""
    scorer = WithPolicy(make_scorer, (cfg.scorer, task))  # built where the searches run, from that policy
    rows: list[dict] = []

    def emit(new: list[dict]) -> None:
        for row in new:
            row.update(scorer=cfg.scorer, problems=len(problems))
            rows.append(row)
            if on_row is not None:
                on_row(row)

    budgets = sorted(set(cfg.budgets))
    for name in cfg.strategies:
        if SEARCHERS[name].nested:  # best-of-N: one sample of the largest N serves every budget
            emit(best_of_n_rows(policy, task, problems, scorer, budgets, cfg))
        else:
            for n in budgets:
                emit([result_row(name, n, task, problems, run_strategy(name, policy, task, problems, scorer, n, cfg))])
    return rows


def run_strategy(name: str, policy, task, problems: Sequence[Problem], scorer, n: int, cfg: SweepConfig
                 ) -> list[SearchResult]:
    """Searcher `name` at budget n, with the sweep's shared settings and its own (`SearcherSpec.sweep`)."""
    spec = SEARCHERS[name]
    config = spec.config(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                         step_tokens=cfg.step_tokens, delimiter=task.step_delimiter, **spec.sweep(n, cfg))
    return map_problems(spec.search, problems, policy, task, scorer, Budget(n), config)


def result_row(name: str, n: int, task, problems: Sequence[Problem], results: Sequence[SearchResult]) -> dict:
    correct = sum(r.answer is not None and task.verify(p, r.answer).correct for p, r in zip(problems, results))
    count = len(problems)
    return {"strategy": name, "budget": n, "accuracy": correct / count,
            "generated_tokens": sum(r.ledger.generated_tokens for r in results) / count,
            "reward_tokens": sum(r.ledger.reward_tokens for r in results) / count,
            "prefilled_tokens": sum(r.ledger.prefilled_tokens for r in results) / count}


def best_of_n_rows(policy, task, problems: Sequence[Problem], scorer, budgets: Sequence[int], cfg: SweepConfig
                   ) -> list[dict]:
    """Sample max(budgets) per problem once; every budget N reads the first N samples of each problem."""
    top = max(budgets)
    parts = map_problems(scored_samples, problems, policy, task, scorer, top, cfg)
    completions = [c for part in parts for c in part[0]]
    weights = [w for part in parts for w in part[1]]
    ledgers = [part[2] for part in parts]
    owners = [p for p in range(len(problems)) for _ in range(top)]
    keys = [task.answer_key(problems[o], c.text) for o, c in zip(owners, completions)]
    right = [task.verify(problems[o], c.text).correct for o, c in zip(owners, completions)]
    rows = []
    count = len(problems)
    for n in budgets:
        tokens = maj = wtd = ceiling = 0.0
        for p in range(count):
            span = range(p * top, p * top + n)
            tokens += sum(generated_tokens(completions[j]) for j in span)
            m = majority_vote([keys[j] for j in span])
            w = weighted_vote([keys[j] for j in span], [weights[j] for j in span])
            maj += m is not None and right[p * top + m]
            wtd += w is not None and right[p * top + w]
            ceiling += any(right[j] for j in span)
        reward = sum(a.reward_tokens for a in ledgers) * n / top / count
        prefill = sum(a.prefilled_tokens for a in ledgers) / count
        for name, value in (("bon_majority", maj), ("bon_weighted", wtd), ("pass@n", ceiling)):
            rows.append({"strategy": name, "budget": n, "accuracy": value / count, "generated_tokens": tokens / count,
                         "reward_tokens": reward if name == "bon_weighted" else 0.0, "prefilled_tokens": prefill})
    return rows


def scored_samples(problems: Sequence[Problem], policy, task, scorer, n: int, cfg: SweepConfig
                   ) -> list[tuple[list[Completion], list[float], Ledger]]:
    """Per problem: n samples (one engine call for all problems), each one's aggregated scorer weight (one scorer
    call), and the problem's ledger."""
    accounts = Accounts(len(problems), n * cfg.max_new_tokens)
    params = SamplingParams(n=n, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    completions = accounts.generate(with_tools(policy, task), [p.prompt for p in problems], list(range(len(problems))), params)
    decode = getattr(getattr(policy, "tokenizer", None), "decode", None)
    steps = [completion_steps(c, task.step_delimiter, decode) for c in completions]
    owners = [c.prompt_index for c in completions]
    scores = accounts.score(scorer, [problems[o] for o in owners], steps, owners)
    weights = [aggregate(s, cfg.aggregate) for s in scores]
    return [(completions[p * n : (p + 1) * n], weights[p * n : (p + 1) * n], accounts.ledgers[p])
            for p in range(len(problems))]
