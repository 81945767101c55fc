"""TRLReward: an outcome reward called the way TRL's GRPOTrainer calls reward functions (keywords only)."""

import pytest

from searchlearn.reward.verifiers import TRLReward, VerifierReward
from searchlearn.tasks.countdown import CountdownTask
from searchlearn.types import Problem


def _problems():
    return [Problem(id="a", prompt="3 7 25 -> 46\n", data={"nums": [3, 7, 25], "target": 46}),
            Problem(id="b", prompt="2 5 -> 10\n", data={"nums": [2, 5], "target": 10})]


def trl_kwargs(**columns):
    """The extra keywords TRL passes to every reward function besides the dataset columns."""
    return {"completion_ids": [[1], [2], [3]], "trainer_state": None, "log_extra": lambda *a: None,
            "log_metric": lambda *a: None, **columns}


def test_scores_rows_by_problem_id_column():
    reward = TRLReward(VerifierReward(CountdownTask()), _problems())
    out = reward(prompts=["x", "x", "x"],  # ignored when the id column is there
                 completions=["answer 25+7*3\n", "answer 2*5\n", "answer 25+7+3\n"],
                 **trl_kwargs(problem_id=["a", "b", "a"]))
    assert out == [1.0, 1.0, 0.0]


def test_falls_back_to_prompt_text_with_prefix_stripped():
    reward = TRLReward(VerifierReward(CountdownTask()), _problems(), strip_prefix="<bos>")
    out = reward(prompts=["<bos>2 5 -> 10\n", "2 5 -> 10\n", "<bos>3 7 25 -> 46\n"],
                 completions=["answer 2*5", "answer 2+5", "answer (7*3)+25"], **trl_kwargs())
    assert out == [1.0, 0.0, 1.0]
    with pytest.raises(KeyError):
        reward(prompts=["9 9 -> 81\n"], completions=["answer 9*9"], **trl_kwargs())


def test_conversational_completions_and_none_pass_through():
    calls = []

    def outcome(problems, completions):
        calls.append((problems, completions))
        return [None if c == "?" else 0.5 for c in completions]

    reward = TRLReward(outcome, _problems())
    out = reward(prompts=[[{"role": "user", "content": "2 5 -> 10\n"}]] * 2,
                 completions=[[{"role": "assistant", "content": "?"}], [{"role": "assistant", "content": "hi"}]],
                 **trl_kwargs())
    assert out == [None, 0.5]
    assert [p.id for p in calls[0][0]] == ["b", "b"] and calls[0][1] == ["?", "hi"]
    assert reward.__name__ == "outcome"  # TRL logs rewards/<name>/mean
    assert TRLReward(VerifierReward(CountdownTask()), _problems()).__name__ == "VerifierReward"
