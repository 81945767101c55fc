"""Rule rewards. The reward contract (docs/DESIGN.md): outcome `(problems, completions) -> list[float | None]`.

A completion may be a string or a `Completion`; TRL-style callables (`f(prompts, completions, **kw)`) fit unchanged.
The other way round, `TRLReward` hands an outcome reward to TRL's `GRPOTrainer` as one of its reward functions.
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
        if hasattr(self.task, "verify_batch"):  # e.g. a task whose verifier runs programs, many at once
            return [v.score for v in self.task.verify_batch(problems, [text_of(c) for c in completions])]
        return [self.task.verify(p, text_of(c)).score for p, c in zip(problems, completions)]


class CheckedReward(VerifierReward):
    """The verifier, and every computed line checked too: 1.0 only for a correct final answer reached with no step
    the task marks as an arithmetic error (`task.step_marks`), so that the reward stops paying for wrong reasoning
    that happens to land on the target (rStar-Math checks each step by executing it; here the task recomputes it).
    For tasks that can check their steps."""

    def __init__(self, task):
        if not hasattr(task, "step_marks"):
            raise ValueError(f"the task {task.name!r} cannot check its steps (no step_marks): use the verifier reward")
        super().__init__(task)

    def __call__(self, problems: Sequence[Problem], completions: Sequence) -> list[float | None]:
        scores = super().__call__(problems, completions)
        return [s if not s or not any(mark == "arithmetic error" for _, mark in self.task.step_marks(p, text_of(c)))
                else 0.0 for s, p, c in zip(scores, problems, completions)]


OUTCOMES = {"verifier": VerifierReward, "checked": CheckedReward}  # outcome rewards by name (a phase's `outcome`)


class TRLReward:
    """An outcome reward as a TRL reward function: `f(prompts, completions, **columns) -> list[float | None]`.

    The other direction of the contract needs this glue: TRL's `GRPOTrainer` calls a reward function with keywords
    only (`prompts=`, `completions=`, `completion_ids=`, `trainer_state=`, ... and every extra dataset column, one
    value per completion), while an outcome reward takes `(problems, completions)`. Each row's `Problem` is found by
    the dataset column `key` (default "problem_id", holding `Problem.id`), or, without that column, by the prompt
    text (with `strip_prefix`, e.g. a BOS written into the prompt text, removed first). Conversational completions
    (a list of messages) are scored on the last message's content. None stays None (TRL reads it as NaN: unscored).
    """

    def __init__(self, reward, problems: Sequence[Problem], key: str = "problem_id", strip_prefix: str = ""):
        self.reward, self.key, self.strip_prefix = reward, key, strip_prefix
        self.by_id = {p.id: p for p in problems}
        self.by_prompt = {p.prompt: p for p in problems}
        self.__name__ = getattr(reward, "__name__", type(reward).__name__)  # TRL names the logged metric after it

    def problem(self, prompt, row_key=None) -> Problem:
        if row_key is not None:
            return self.by_id[row_key]
        text = prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)
        if self.strip_prefix and text.startswith(self.strip_prefix):
            text = text[len(self.strip_prefix):]
        if text not in self.by_prompt:
            raise KeyError(f"no problem has the prompt {text!r}; pass a '{self.key}' dataset column")
        return self.by_prompt[text]

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float | None]:
        keys = columns.get(self.key) or [None] * len(prompts)
        problems = [self.problem(p, k) for p, k in zip(prompts, keys)]
        texts = [c[-1]["content"] if isinstance(c, list) else text_of(c) for c in completions]
        return list(self.reward(problems, texts))
