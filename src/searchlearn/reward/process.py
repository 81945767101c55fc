"""Process rewards. The contract (docs/DESIGN.md): `(problems, prefixes) -> list[list[float]]`, one score per step.

A prefix is a completion so far (without the prompt): either a string, which the scorer splits into steps with the
task's delimiter, or a list of `Step`s as a search records them (text plus the policy's token count and summed
logprob). A scorer that runs a model has a `ledger` and charges the tokens it reads to it (`Ledger.charge_reward`);
searchers move that into their own ledgers. Scorers here:
  * `GoldScorer`: Countdown's exact labels (is the target still reachable after each step?), free: an oracle, the
    upper bound a learned PRM can approach, and exact expectations for tests.
  * `ConfidenceScorer`: the policy's own confidence in each step, exp(mean token logprob) — the geometric-mean
    token probability, in (0, 1]. Free when the search recorded the logprobs; else it runs the policy (charged).
  * `OutcomeAtTerminal`: any process scorer with an outcome reward (e.g. the verifier) at steps that end a solution.
  * `Weighted`: a weighted sum of process scorers.
Scorers are chosen by name through `reward/scorers.py`'s registry; `reward/aggregate.py` turns one path's step
scores into the number a search ranks paths by.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from searchlearn.types import Ledger, Problem, Step

Prefix = str | Sequence[Step]


def prefix_text(prefix: Prefix) -> str:
    return prefix if isinstance(prefix, str) else "".join(step.text for step in prefix)


class GoldScorer:
    """Countdown's gold process labels (`task.gold_step_values`): 1.0 while the target is reachable, else 0.0; a
    check/answer step is 1.0 exactly when its expression is a correct solution. Costs no reward tokens."""

    def __init__(self, task):
        self.task = task
        self.ledger = Ledger()

    def __call__(self, problems: Sequence[Problem], prefixes: Sequence[Prefix]) -> list[list[float]]:
        _check(problems, prefixes)
        return [self.task.gold_step_values(p, prefix_text(x)) for p, x in zip(problems, prefixes)]


class ConfidenceScorer:
    """exp(logprob / num_tokens) of each step: the policy's own confidence (self-certainty) as a process reward.

    Steps recorded by a search carry their summed logprob and token count, and cost nothing to score. A text prefix
    (or steps without token counts) needs `policy`: the scorer then runs it on prompt + prefix, charging every token
    it reads to `self.ledger` as reward tokens (a policy is a reward model here too).
    """

    def __init__(self, policy=None, task=None):
        self.policy = policy
        self.task = task
        self.ledger = Ledger()

    def __call__(self, problems: Sequence[Problem], prefixes: Sequence[Prefix]) -> list[list[float]]:
        _check(problems, prefixes)
        out: list[list[float] | None] = []
        pending = []
        for i, prefix in enumerate(prefixes):
            if not isinstance(prefix, str) and all(s.num_tokens > 0 for s in prefix):
                out.append([math.exp(min(0.0, s.logprob / s.num_tokens)) for s in prefix])
            else:
                out.append(None)
                pending.append(i)
        if pending:
            for i, scores in zip(pending, self._run_policy([problems[i] for i in pending],
                                                           [prefix_text(prefixes[i]) for i in pending])):
                out[i] = scores
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def _run_policy(self, problems: Sequence[Problem], texts: Sequence[str]) -> list[list[float]]:
        if self.policy is None or self.task is None:
            raise ValueError("ConfidenceScorer needs recorded step logprobs, or a policy and a task to score text")
        tokenizer = self.policy.tokenizer
        prompts = self.policy.encode_prompts([p.prompt for p in problems])
        pieces = [[tokenizer.encode(s) for s in self.task.steps(text)] for text in texts]
        completions = [[t for piece in steps for t in piece] for steps in pieces]
        logps: list[list[float]] = [[] for _ in completions]
        sequences = [p + c for p, c in zip(prompts, completions)]
        for chunk in _length_chunks([i for i, c in enumerate(completions) if c], sequences,
                                    self.policy.model.config.vocab_size):
            rows = self.policy.logprobs([prompts[i] for i in chunk], [completions[i] for i in chunk])
            for i, logp in zip(chunk, rows):
                logps[i] = logp.tolist()
                self.ledger.charge_reward(len(prompts[i]) + len(completions[i]), self.policy.n_params)
        out = []
        for logp, steps in zip(logps, pieces):
            scores, start = [], 0
            for piece in steps if logp else ():
                chunk = logp[start : start + len(piece)]
                start += len(piece)
                scores.append(math.exp(sum(chunk) / len(chunk)) if chunk else 0.0)
            out.append(scores)
        return out


def _length_chunks(index: list[int], seqs: Sequence[Sequence[int]], vocab: int, max_logits: int = 1 << 24
                   ) -> list[list[int]]:
    """`index` sorted by sequence length and cut into batches of at most `max_logits` logits (rows × longest × V)."""
    order, chunks = sorted(index, key=lambda i: len(seqs[i])), []
    for i in order:
        if chunks and (len(chunks[-1]) + 1) * len(seqs[i]) * vocab <= max_logits:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def ends_with_answer(problem: Problem, text: str) -> bool:
    """Whether the last step of `text` is an answer line ("answer ..."): the step that ends a Countdown solution."""
    lines = [line for line in text.split("\n") if line.strip()]
    return bool(lines) and lines[-1].lstrip().startswith("answer")


class OutcomeAtTerminal:
    """A process scorer whose last score, on a prefix that ends a solution, is mixed with an outcome reward:
    (1 − weight) · process + weight · outcome. With the verifier and weight 1, a finished path scores its correctness.
    An outcome of None (not applicable) keeps the process score."""

    def __init__(self, process, outcome, is_terminal: Callable[[Problem, str], bool] = ends_with_answer,
                 weight: float = 1.0):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        self.process, self.outcome, self.is_terminal, self.weight = process, outcome, is_terminal, weight

    @property
    def ledger(self) -> Ledger:
        return getattr(self.process, "ledger", None) or Ledger()

    def __call__(self, problems: Sequence[Problem], prefixes: Sequence[Prefix]) -> list[list[float]]:
        scores = [list(s) for s in self.process(problems, prefixes)]
        texts = [prefix_text(x) for x in prefixes]
        ends = [i for i, (p, t) in enumerate(zip(problems, texts)) if scores[i] and self.is_terminal(p, t)]
        if ends:
            outcomes = self.outcome([problems[i] for i in ends], [texts[i] for i in ends])
            for i, o in zip(ends, outcomes):
                if o is not None:
                    scores[i][-1] = (1.0 - self.weight) * scores[i][-1] + self.weight * float(o)
        return scores


class Weighted:
    """Σ_j w_j · scorer_j, step by step (the scorers must agree on the number of steps)."""

    def __init__(self, scorers: Sequence[tuple[Callable, float]]):
        self.scorers = list(scorers)
        self.ledger = Ledger()

    def __call__(self, problems: Sequence[Problem], prefixes: Sequence[Prefix]) -> list[list[float]]:
        total: list[list[float]] | None = None
        for scorer, w in self.scorers:
            inner = getattr(scorer, "ledger", None)
            before = inner.copy() if inner is not None else None
            scores = scorer(problems, prefixes)
            if inner is not None:
                self.ledger.add(inner.since(before))
            if total is None:
                total = [[w * v for v in s] for s in scores]
            else:
                if any(len(a) != len(b) for a, b in zip(total, scores)):
                    raise ValueError("weighted scorers disagree on the number of steps")
                total = [[a + w * v for a, v in zip(t, s)] for t, s in zip(total, scores)]
        return total or [[] for _ in prefixes]


def _check(problems: Sequence, prefixes: Sequence) -> None:
    if len(problems) != len(prefixes):
        raise ValueError(f"{len(problems)} problems but {len(prefixes)} prefixes")
