"""Your own task, in one file: add up two or three numbers, one addition a line.

    prompt      "17+9+14\\n"
    completion  "17+9=26\\n26+14=40\\nanswer 40\\n"

A task is a class with the members of `searchlearn.contracts.Task` (problems, a verifier, a step format) plus what
policy initialization trains on: `words` and `max_number` (the tiny model's vocabulary) and `trace_segments` (a
solver's step-by-step solution). Its settings are a dataclass that annotates the constructor's first parameter; the
loop config's `task:` keys set them. Nothing is registered: a config names the class by its file.

Run the loop on it (a tiny model trained from scratch, a round of expert iteration, a round of GRPO; about a minute
on two CPU cores), then read runs/your_task/report.html:

    searchlearn loop examples/your_task.yaml --out runs/your_task

or put it under any loop config (its `task:` keys are then AddConfig's defaults, or set as `--set task.hi=9`):

    searchlearn loop configs/loop_quick.yaml --set task_name=examples/your_task.py:AddTask

`python examples/search_api.py runs/your_task/policy` then searches its held-out problems with the trained policy.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from searchlearn.types import Problem, Verdict

ANSWER = re.compile(r"answer (\d{1,6})")  # the answer line: a number, nothing else


@dataclass(frozen=True)
class AddConfig:
    min_terms: int = 2  # numbers to add, at least
    max_terms: int = 3  # and at most
    hi: int = 20  # each number is one of 1..hi
    test_fraction: float = 0.2  # share of the problems held out for the test split: never trained on
    split_seed: int = 0  # which problems are held out

    def __post_init__(self) -> None:
        if not 2 <= self.min_terms <= self.max_terms or self.hi < 1:
            raise ValueError("need 2 <= min_terms <= max_terms and hi >= 1")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")


def answer_of(text: str) -> int | None:
    """The number on the last line that starts with "answer" (None: no such line, or not a number there)."""
    for line in reversed(text.splitlines()):
        if line.startswith("answer"):
            m = ANSWER.fullmatch(line.strip())
            return int(m[1]) if m else None
    return None


class AddTask:
    """The Task: problems with a held-out split, a verifier, steps, and the solver's traces."""

    name = "add"
    step_delimiter = "\n"  # a step is a line
    words = ("answer",)  # words the traces use, each one token

    def __init__(self, config: AddConfig | None = None):
        self.config = config if config is not None else AddConfig()

    @property
    def max_number(self) -> int:
        """The largest number the traces write (one token each when the model's `digit_tokens` is off)."""
        return self.config.max_terms * self.config.hi

    def is_held_out(self, nums: list[int]) -> bool:
        """Whether these numbers are a test problem: a seeded coin with P(heads) = test_fraction for each list."""
        return random.Random(f"add-split-{self.config.split_seed}-{nums}").random() < self.config.test_fraction

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """`n` problems of `split` ("train" or "test"), the same for the same seed."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        c, rng, out = self.config, random.Random(f"add-{split}-{seed}"), []
        while len(out) < n:
            nums = [rng.randint(1, c.hi) for _ in range(rng.randint(c.min_terms, c.max_terms))]
            if self.is_held_out(nums) == (split == "test"):
                out.append(Problem(f"add-{split}-{seed}-{len(out)}", "+".join(map(str, nums)) + "\n", {"nums": nums}))
        return out

    def verify(self, problem: Problem, text: str) -> Verdict:
        """Correct when the answer line holds the sum. The text is parsed, never run: it is model output."""
        answer, total = answer_of(text), sum(problem.data["nums"])
        if answer is None:
            return Verdict(0.0, "no answer line")
        return Verdict(1.0, "correct") if answer == total else Verdict(0.0, f"answer {answer}, want {total}")

    def answer_key(self, problem: Problem, text: str) -> int | None:
        """What majority voting compares."""
        return answer_of(text)

    def steps(self, text: str) -> list[str]:
        """The lines of `text`, each with its "\\n", so that "".join(steps) == text."""
        return text.splitlines(keepends=True)

    def trace_segments(self, problem: Problem, rng: random.Random) -> list[tuple[str, bool]]:
        """The solver's completion as (text, trained) segments: a running sum, one addition a line, then the answer.
        All of it is trained; a segment marked False would be context the model reads but is not taught to write (a
        slip it then corrects, a tool's output). `rng` is for traces that vary; these do not."""
        nums, lines = problem.data["nums"], []
        total = nums[0]
        for x in nums[1:]:
            lines.append(f"{total}+{x}={total + x}\n")
            total += x
        return [("".join(lines) + f"answer {total}\n", True)]
