"""Training labels for learned reward models, made by search: Monte-Carlo step labels and Q-margin preference pairs.

Monte-Carlo process labels (Math-Shepherd, Wang et al. 2024): for every step prefix s_{1..i} of a sampled solution,
the policy completes the prefix M times; with c of the M completions correct,
    hard label  y_i = 1[c > 0]        (the step can still lead to a correct answer)
    soft label  y_i = c / M           (an estimate of the step's value Q(s_{1..i}) under the policy)
A prefix that already ends the solution (its last step is the answer) needs no rollouts: its label is the verifier's
outcome. All rollouts of all prefixes of all solutions go to the policy in one `generate` call (the engine batches).

Preference pairs (rStar-Math, Guan et al. 2025): sibling steps — different next steps after the same prefix — whose
Q-values differ by at least a margin give (chosen, rejected) pairs for a Bradley–Terry process preference model.

Pure cores (`mc_targets`, `q_margin_pairs`, `step_prefixes`) take and return data; `mc_labels` runs the policy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from searchlearn.env.tool_policy import with_tools
from searchlearn.reward.process import ends_with_answer
from searchlearn.types import Problem, SamplingParams


@dataclass
class StepLabels:
    """One sampled solution with a label per step: `hard[i]`, `soft[i]` after step i, and the outcome of the whole."""

    problem: Problem
    steps: list[str]
    hard: list[float] = field(default_factory=list)
    soft: list[float] = field(default_factory=list)
    outcome: float = 0.0  # the verifier's score of the complete solution
    keep: list[bool] | None = None  # steps a process head trains on (None: all; `consensus` sets it)

    @property
    def completion(self) -> str:
        return "".join(self.steps)


@dataclass(frozen=True)
class Pair:
    """A preference between two sibling steps after the same `prefix` (steps of one problem's solution)."""

    problem: Problem
    prefix: tuple[str, ...]
    chosen: str
    rejected: str
    margin: float  # Q(chosen) − Q(rejected)


def mc_targets(outcomes: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """(hard, soft) labels from each step's rollout outcomes (scores in [0, 1]; correct = score ≥ 1).

    Math-Shepherd's estimators: hard = 1 if any rollout is correct, soft = the fraction correct. A step with no
    rollouts is labelled 0 (nothing shows it can succeed)."""
    hard, soft = [], []
    for rolls in outcomes:
        wins = sum(1 for o in rolls if o is not None and o >= 1.0)
        hard.append(float(wins > 0))
        soft.append(wins / len(rolls) if rolls else 0.0)
    return hard, soft


def step_prefixes(steps: Sequence[str]) -> list[str]:
    """The text through each step: ["s1", "s1s2", ...]."""
    out, text = [], ""
    for s in steps:
        text += s
        out.append(text)
    return out


def mc_labels(policy, task, problems: Sequence[Problem], completions: Sequence[str], m: int = 8,
              temperature: float = 1.0, max_new_tokens: int = 128, seed: int | None = 0,
              is_terminal: Callable[[Problem, str], bool] | None = None, step_only: bool = True,
              within_budget: bool = False) -> list[StepLabels]:
    """Monte-Carlo labels for each step of each (problem, completion): M rollouts per non-terminal step prefix.

    `completions[j]` is a solution to `problems[j]` (without the prompt). Rollouts continue `prompt + prefix` to the
    end of the solution; outcome = task.verify(problem, prefix + rollout). With `step_only` and a task that can tell
    (`task.backs_out`), a rollout that abandons the labelled step (backtracks above it) counts as a failure: it is
    evidence about another branch, not about this step — otherwise a dead end that the policy later backs out of
    inherits its parent's value. A prefix that `is_terminal` (default: its last line is an answer) is labelled by
    verifying it alone. `within_budget`: `max_new_tokens` is the whole solution's budget, so a rollout may write
    only what its prefix left of it (a value under the horizon the solution was sampled with, as VinePPO's is);
    otherwise each rollout gets all of it. One batched `policy.generate` call for everything."""
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    is_terminal = is_terminal or ends_with_answer
    records = [StepLabels(p, task.steps(c), outcome=task.verify(p, c).score) for p, c in zip(problems, completions)]
    outcomes: list[list[list[float]]] = [[[] for _ in r.steps] for r in records]
    jobs: list[tuple[int, int, str]] = []  # (record, step, prefix) needing rollouts
    for j, r in enumerate(records):
        for i, prefix in enumerate(step_prefixes(r.steps)):
            if is_terminal(r.problem, prefix):
                outcomes[j][i] = [task.verify(r.problem, prefix).score]
            else:
                jobs.append((j, i, prefix))
    if jobs:
        params = SamplingParams(n=m, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        budgets = ([max(1, max_new_tokens - len(policy.tokenizer.encode(prefix))) for _, _, prefix in jobs]
                   if within_budget else None)
        rolls = with_tools(policy, task).generate([records[j].problem.prompt + prefix for j, _, prefix in jobs],
                                                  params, budgets)  # a task with tools: the calls are answered
        backs_out = getattr(task, "backs_out", None) if step_only else None
        for k, (j, i, prefix) in enumerate(jobs):
            problem = records[j].problem
            outcomes[j][i] = [0.0 if backs_out is not None and backs_out(problem, prefix, c.text)
                              else task.verify(problem, prefix + c.text).score for c in rolls[k * m : (k + 1) * m]]
    for r, outs in zip(records, outcomes):
        r.hard, r.soft = mc_targets(outs)
    return records


def consensus(labels: Sequence[StepLabels], judge: Sequence[Sequence[float]], threshold: float = 0.5
              ) -> list[StepLabels]:
    """Consensus filtering (Zhang et al. 2025, "The Lessons of Developing Process Reward Models"): keep a step for
    training only where its hard MC label and a judge's score (e.g. the policy's self-evaluation) agree, i.e.
    (hard ≥ 0.5) == (judge ≥ threshold); `judge[j][i]` scores step i of solution j. Returns copies with `keep` set."""
    if len(judge) != len(labels):
        raise ValueError(f"{len(judge)} judged solutions for {len(labels)} labelled ones")
    out = []
    for r, scores in zip(labels, judge):
        if len(scores) != len(r.steps):
            raise ValueError(f"{len(scores)} judge scores for {len(r.steps)} steps")
        keep = [(h >= 0.5) == (j >= threshold) for h, j in zip(r.hard, scores)]
        out.append(StepLabels(r.problem, r.steps, r.hard, r.soft, r.outcome, keep))
    return out


def q_margin_pairs(labels: Sequence[StepLabels], margin: float = 0.5, kind: str = "soft") -> list[Pair]:
    """Sibling-step preference pairs (rStar-Math): among solutions of one problem that share the prefix s_{1..i-1} and
    differ at step i, pair the highest-Q step with every sibling whose Q is lower by at least `margin`.

    Q of a step is its MC label of `kind` ("soft" or "hard"); siblings with the same text are merged (mean Q)."""
    if kind not in ("soft", "hard"):
        raise ValueError(f"kind must be soft or hard, got {kind!r}")
    groups: dict[tuple[str, tuple[str, ...]], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    problem_of: dict[str, Problem] = {}
    for r in labels:
        problem_of[r.problem.id] = r.problem
        q = r.soft if kind == "soft" else r.hard
        for i, step in enumerate(r.steps):
            groups[(r.problem.id, tuple(r.steps[:i]))][step].append(q[i])
    pairs = []
    for (pid, prefix), siblings in groups.items():
        if len(siblings) < 2:
            continue
        mean_q = {s: sum(v) / len(v) for s, v in siblings.items()}
        best = max(mean_q, key=lambda s: mean_q[s])
        for s, q in mean_q.items():
            if s != best and mean_q[best] - q >= margin:
                pairs.append(Pair(problem_of[pid], prefix, best, s, mean_q[best] - q))
    return pairs
