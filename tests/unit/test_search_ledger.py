"""Every searcher on a tiny random LocalPolicy: the ledger counts exactly the tokens the engine produced, the budget
cap holds, seeded searches repeat; and revision on a scripted policy."""

import pytest
from conftest import STEP_TOKENIZER, stepping_policy

from searchlearn.policy.policy import LocalPolicy
from searchlearn.reward.process import ConfidenceScorer, GoldScorer
from searchlearn.search.beam import BeamConfig, beam_search
from searchlearn.search.budget import Budget
from searchlearn.search.dvts import dvts
from searchlearn.search.mcts import MCTSConfig, mcts
from searchlearn.search.revision import RevisionConfig, revise
from searchlearn.search.scripted import EOS, ScriptedPolicy
from searchlearn.tasks.countdown import CountdownTask, backtrack_prompt
from searchlearn.types import Problem

TASK = CountdownTask()
TOK = STEP_TOKENIZER
PROBLEMS = TASK.problems("test", 3, seed=5)
SMALL = dict(step_tokens=6, max_new_tokens=24, max_steps=8)


@pytest.fixture(scope="module")
def policy() -> LocalPolicy:
    return stepping_policy()


def engine_counter(policy: LocalPolicy) -> list[int]:
    """Record `last_generated_tokens` after every engine call."""
    produced: list[int] = []
    original = policy.engine.generate

    def generate(prompt_ids, params, **options):
        out = original(prompt_ids, params, **options)
        produced.append(policy.engine.last_generated_tokens)
        return out

    policy.engine.generate = generate
    return produced


SEARCHES = {
    "beam": lambda pol, b, seed=0: beam_search(PROBLEMS, pol, TASK, ConfidenceScorer(), b,
                                               BeamConfig(width=2, seed=seed, **SMALL)),
    "beam_lookahead": lambda pol, b, seed=0: beam_search(PROBLEMS, pol, TASK, GoldScorer(TASK), b,
                                                         BeamConfig(width=2, lookahead=1, seed=seed, **SMALL)),
    "dvts": lambda pol, b, seed=0: dvts(PROBLEMS, pol, TASK, ConfidenceScorer(), b,
                                        BeamConfig(width=2, seed=seed, **SMALL)),
    "mcts": lambda pol, b, seed=0: mcts(PROBLEMS, pol, TASK, ConfidenceScorer(), b,
                                        MCTSConfig(k=3, noise_fraction=0.25, seed=seed, **SMALL)),
    "mcts_rollout": lambda pol, b, seed=0: mcts(PROBLEMS, pol, TASK, GoldScorer(TASK), b,
                                                MCTSConfig(k=2, evaluation="rollout", seed=seed, verify_terminals=True,
                                                           **SMALL)),
    "revision": lambda pol, b, seed=0: revise(PROBLEMS, pol, TASK, ConfidenceScorer(), b,
                                              RevisionConfig(sequential=2, seed=seed, **SMALL)),
}


@pytest.mark.parametrize("name", sorted(SEARCHES))
@pytest.mark.parametrize("budget", [Budget(4), Budget(8, max_tokens=70)])
def test_ledger_counts_engine_tokens_and_budget_holds(name, budget):
    policy = stepping_policy()
    produced = engine_counter(policy)
    results = SEARCHES[name](policy, budget)
    cap = budget.cap(SMALL["max_new_tokens"])
    spent = [r.ledger.generated_tokens for r in results]
    assert sum(spent) == sum(produced) == policy.ledger.generated_tokens > 0
    assert all(s <= cap for s in spent), (spent, cap)
    assert sum(r.ledger.prefilled_tokens for r in results) == pytest.approx(policy.ledger.prefilled_tokens)
    assert sum(r.ledger.policy_flops for r in results) == pytest.approx(policy.ledger.policy_flops)
    for r in results:
        assert r.trajectories and all(t.problem_id == r.problem_id for t in r.trajectories)


def test_beam_tree_holds_every_generated_token(policy):
    before = policy.ledger.generated_tokens
    results = SEARCHES["beam"](policy, Budget(4))
    in_trees = sum(n.count * n.step.num_tokens for r in results for n in r.tree.nodes[1:])
    assert in_trees == policy.ledger.generated_tokens - before


@pytest.mark.parametrize("name", ["beam", "dvts", "mcts", "revision"])
def test_seeded_searches_repeat(policy, name):
    first = SEARCHES[name](policy, Budget(4), seed=3)
    again = SEARCHES[name](policy, Budget(4), seed=3)
    assert [r.answer for r in first] == [r.answer for r in again]
    assert [[t.completion for t in r.trajectories] for r in first] == [[t.completion for t in r.trajectories]
                                                                        for r in again]
    assert [r.ledger.generated_tokens for r in first] == [r.ledger.generated_tokens for r in again]


def test_revision_with_feedback_stops_accepted_chains():
    problem = Problem("p", "3 4 -> 7\n", {"nums": [3, 4], "target": 7})

    def script(prompt, n):  # the first attempt is wrong; a revision (after "back | 3 4") is right
        return ["answer 3+4\n" + EOS if "back | 3 4\n" in prompt else "4-3=1 no\nanswer 4-3\n" + EOS] * n

    policy = ScriptedPolicy(script)
    cfg = RevisionConfig(sequential=3, feedback=True)
    [r] = revise([problem], policy, TASK, None, Budget(6), cfg)  # 2 chains × 3, judged by the task's verifier
    assert policy.calls == 2  # round 3 has no live chain: both were accepted in round 2
    assert policy.prompts[1] == ["3 4 -> 7\n4-3=1 no\nback | 3 4\n"] * 2
    assert [t.correct for t in r.trajectories] == [False, True, False, True]
    assert TASK.verify(problem, r.answer).correct

    policy = ScriptedPolicy(script)
    [r] = revise([problem], policy, TASK, None, Budget(6), RevisionConfig(sequential=3))  # no feedback: every round
    assert policy.calls == 3 and len(r.trajectories) == 6


def test_backtrack_prompt_keeps_the_exploration_and_returns_to_the_start():
    problem = Problem("p", "3 4 5 -> 27\n", {"nums": [3, 4, 5], "target": 27})
    previous = "4+3=7 | 5 7\n7*5=35 no\ncheck 5*(4+3)=35 ok\nanswer 5*(4+3)\n"
    assert backtrack_prompt(problem, previous, None, 1) == "3 4 5 -> 27\n7*5=35 no\nback | 3 4 5\n"
