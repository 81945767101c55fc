"""Rule rewards. The reward contract (DESIGN.md): outcome `(problems, completions) -> list[float | None]`.

A completion may be a string or a `Completion`; TRL-style callables (`f(prompts, completions, **kw)`) fit unchanged.
"""

from __future__ import annotations

from typing import Sequence

from searchlearn.types import Completion, Problem


def text_of(completion) -> str:
    return completion.text if isinstance(completion, Completion) else str(completion)


class VerifierReward:
    """The task's verifier as an outcome reward: 1.0 if the final answer is correct, else 0.0. Never raises."""

    def __init__(self, task):
        self.task = task

    def __call__(self, problems: Sequence[Problem], completions: Sequence) -> list[float | None]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        return [self.task.verify(p, text_of(c)).score for p, c in zip(problems, completions)]
