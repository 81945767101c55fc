"""HumanEval through the sandbox: every canonical solution passes, every `return None` body fails; completions in
both shapes a model writes (a body, a fenced whole program) become the right program."""

from __future__ import annotations

import pytest

from searchlearn.reward.verifiers import VerifierReward
from searchlearn.tasks.humaneval import HumanEvalTask, body_of, program
from searchlearn.tasks.registry import TASKS


@pytest.fixture(scope="module")
def task() -> HumanEvalTask:
    return TASKS["humaneval"].build()


def test_the_wheel_has_164_problems(task):
    problems = task.problems("test", 1000)
    assert len(problems) == 164 and problems[0].id == "HumanEval/0" and problems[-1].id == "HumanEval/163"
    assert task.problems("test", 3) == problems[:3]
    with pytest.raises(ValueError, match="split"):
        task.problems("dev", 1)


def test_canonical_solutions_pass_and_return_none_fails(task):
    problems = task.problems("test", 164)
    reward = VerifierReward(task)  # goes through verify_batch: the pool
    assert reward(problems, [p.data["canonical_solution"] for p in problems]) == [1.0] * 164
    assert reward(problems, ["    return None\n"] * 164) == [0.0] * 164


def test_completion_shapes(task):
    p = task.problems("test", 1)[0]  # has_close_elements, with "from typing import List" in its prompt
    body = p.data["canonical_solution"]
    assert body_of(body + "\n\ndef unrelated():\n    pass\n") == body + "\n"
    assert program(p, body).startswith(p.prompt + body)
    chat = f"Sure.\n```python\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n{body}```\nDone."
    source = program(p, chat)
    assert source.startswith("from typing import List\ndef has_close_elements(") and "Sure." not in source
    assert task.verify(p, chat).correct
    unopened = f"def has_close_elements(numbers: List[float], threshold: float) -> bool:\n{body}```\n\nThis uses abs."
    assert "This uses" not in program(p, unopened) and task.verify(p, unopened).correct
    wrong = task.verify(p, "    return not_defined\n")
    assert not wrong.correct and "NameError" in wrong.reason
    assert task.answer_key(p, body + "\n\n") == task.answer_key(p, body.replace("\n", "\n\n"))
