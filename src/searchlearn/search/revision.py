"""Sequential revision: the policy sees its previous attempt and tries again (self-correction; Snell et al. 2024,
"Scaling LLM Test-Time Compute Optimally", §6), in parallel chains.

Budget n buys n attempts per problem: n // sequential chains × sequential attempts each (the parallel × sequential
hybrid; sequential = 1 is best-of-N). Round r samples the next attempt of every live chain of every problem in ONE
engine call. An attempt after the first is prompted by the task's `revision_prompt(problem, previous_attempt,
verdict, context_steps)`:
  * without feedback every chain revises every round, its verdict None;
  * with verifier feedback (`feedback=True`: the task's verifier judges each attempt) a chain whose attempt the verifier
    accepts stops, and the others see the verdict they got. With the task's own verifier this is oracle feedback:
    the training-time setting, or an upper bound at test time.
The answer is chosen among all attempts of all chains by `select` (a revision can be worse than what it revised, so
the last attempts alone are not enough); an attempt's reward is the verifier's score (with feedback), else the
scorer's last step score (when a scorer is given), else 1 (so "weighted" is a plain vote).
Each attempt is a trajectory whose prompt is what the policy saw, so a learner can train on revisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from searchlearn.env.tool_policy import with_tools
from searchlearn.reward.aggregate import aggregate
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.budget import Accounts, Budget
from searchlearn.search.steps import (
    SELECT_RULES,
    SearchConfig,
    choose,
    completion_steps,
)
from searchlearn.types import Problem, SearchResult, Trajectory, Verdict


@dataclass
class RevisionConfig(SearchConfig):
    sequential: int = 4  # attempts per chain: the first and sequential − 1 revisions
    feedback: bool = False  # the verifier's verdict on each attempt reaches its chain; accepted chains stop
    select: str = "weighted"  # the answer among all attempts: weighted | max | majority
    context_steps: int = 12  # most steps of the previous attempt a Countdown revision prompt keeps

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sequential < 1 or self.context_steps < 0:
            raise ValueError("sequential must be >= 1 and context_steps >= 0")
        if self.select not in SELECT_RULES:
            raise ValueError(f"select must be one of {', '.join(SELECT_RULES)}, got {self.select!r}")


def revise(problems: Sequence[Problem], policy, task, scorer, budget: Budget, cfg: RevisionConfig | None = None
           ) -> list[SearchResult]:
    """Parallel chains of sequential revisions, batched across problems and chains (one engine call per round).

    A revision's prompt is the task's `revision_prompt(problem, previous, verdict, context_steps)` (Countdown: its
    backtracking format); a task without one restarts from the problem's prompt. With `cfg.feedback` the task's
    verifier judges each attempt; else `scorer` (when given) rewards it."""
    cfg = cfg or RevisionConfig()
    verifier = VerifierReward(task) if cfg.feedback else None
    revise_prompt = getattr(task, "revision_prompt", _restart)
    policy = with_tools(policy, task)  # a task with tools: its calls are answered
    accounts = Accounts(len(problems), budget.cap(cfg.max_new_tokens))
    chains = max(1, budget.n // cfg.sequential)
    history: list[list[list[Trajectory]]] = [[[] for _ in range(chains)] for _ in problems]  # [p][chain] attempts
    live = [(p, c) for p in range(len(problems)) for c in range(chains)]
    decode = getattr(getattr(policy, "tokenizer", None), "decode", None)
    for _ in range(cfg.sequential):
        admitted, used = [], [0] * len(problems)
        for p, c in live:
            if accounts.afford(p, used[p] + 1, cfg.max_new_tokens):
                admitted.append((p, c))
                used[p] += 1
        if not admitted:
            break
        prompts = [_prompt(problems[p], history[p][c], revise_prompt, cfg) for p, c in admitted]
        params = cfg.step_params(1, accounts, max_new_tokens=cfg.max_new_tokens)
        params.stop = ()
        completions = accounts.generate(policy, prompts, [p for p, _ in admitted], params)
        attempts = [Trajectory(problems[p].id, prompt, x.text, completion_steps(x, cfg.delimiter, decode),
                               list(x.token_ids), list(x.logprobs), mask=x.mask)
                    for (p, _), prompt, x in zip(admitted, prompts, completions)]
        _reward(attempts, [problems[p] for p, _ in admitted], cfg, verifier, scorer, accounts,
                [p for p, _ in admitted])
        for (p, c), attempt in zip(admitted, attempts):
            history[p][c].append(attempt)
        live = [(p, c) for (p, c), a in zip(admitted, attempts) if not (cfg.feedback and a.correct)]
    results = []
    for p, problem in enumerate(problems):
        every = [a for attempts in history[p] for a in attempts]
        index = choose(problem, task, every, cfg.select)
        results.append(SearchResult(problem.id, None if index is None else every[index].completion, every,
                                    accounts.ledgers[p]))
    return results


def _restart(problem: Problem, previous: str, verdict: Verdict | None, context_steps: int) -> str:
    return problem.prompt


def _prompt(problem: Problem, attempts: list[Trajectory], revise_prompt, cfg: RevisionConfig) -> str:
    if not attempts:
        return problem.prompt
    last = attempts[-1]
    verdict = Verdict(last.reward, "verifier") if cfg.feedback and last.reward is not None else None
    return revise_prompt(problem, last.completion, verdict, cfg.context_steps)


def _reward(attempts: list[Trajectory], problems: list[Problem], cfg: RevisionConfig, verifier, scorer,
            accounts: Accounts, owners: list[int]) -> None:
    """Fill each attempt's reward (and `correct`, with feedback): verifier score, scorer score, or 1."""
    if cfg.feedback:
        for a, score in zip(attempts, verifier(problems, [a.completion for a in attempts])):
            a.reward, a.correct = score, score is not None and score >= 1.0
    elif scorer is not None:
        scores = accounts.score(scorer, problems, [a.steps for a in attempts], owners)
        for a, s in zip(attempts, scores):
            a.reward = aggregate(s, "last")
    else:
        for a in attempts:
            a.reward = 1.0
