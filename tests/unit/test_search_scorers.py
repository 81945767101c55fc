"""Process scorers: the gold labels, the policy's confidence (recorded or run, and charged), outcome at terminals,
aggregation, and the per-problem charging of reward tokens."""

import math

import pytest
from conftest import stepping_policy

from searchlearn.reward.aggregate import aggregate
from searchlearn.reward.process import (
    ConfidenceScorer,
    GoldScorer,
    OutcomeAtTerminal,
    Weighted,
    ends_with_answer,
)
from searchlearn.reward.scorers import make_scorer
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.budget import Accounts
from searchlearn.search.steps import completion_steps
from searchlearn.tasks.countdown import CountdownTask
from searchlearn.types import Completion, Ledger, Problem, Step

TASK = CountdownTask()
PROBLEM = Problem("p", "3 7 25 -> 46\n", {"nums": [3, 7, 25], "target": 46})
GOOD = TASK.traces(PROBLEM, style="optimal")[0]  # the solver's trace: every step keeps the target reachable
BAD = "hello\nanswer (25+7)*3\n"


def test_gold_scorer_matches_the_gold_labels_for_text_and_steps():
    scorer = GoldScorer(TASK)
    steps = [Step(s) for s in TASK.steps(GOOD)]
    n = len(steps)
    assert n >= 3 and scorer([PROBLEM, PROBLEM], [GOOD, steps]) == [[1.0] * n] * 2
    assert scorer([PROBLEM], [BAD]) == [[0.0, 0.0]]
    assert scorer.ledger.reward_tokens == 0


def test_confidence_of_recorded_steps_is_the_geometric_mean_token_probability():
    steps = [Step("a\n", num_tokens=2, logprob=-1.0), Step("b\n", num_tokens=4, logprob=-0.4)]
    assert ConfidenceScorer()([PROBLEM], [steps]) == [[pytest.approx(math.exp(-0.5)), pytest.approx(math.exp(-0.1))]]
    with pytest.raises(ValueError):
        ConfidenceScorer()([PROBLEM], [GOOD])  # text needs a policy to score


def test_confidence_on_text_runs_the_policy_and_charges_reward_tokens():
    policy = stepping_policy()
    scorer = make_scorer("confidence", TASK, policy)
    [scores] = scorer([PROBLEM], [GOOD])
    assert len(scores) == len(TASK.steps(GOOD)) and all(0.0 < s <= 1.0 for s in scores)
    tokens = len(policy.encode_prompts([PROBLEM.prompt])[0]) + len(policy.tokenizer.encode(GOOD))
    assert scorer.ledger.reward_tokens == tokens
    assert scorer.ledger.reward_flops == pytest.approx(2.0 * policy.n_params * tokens)
    # recorded steps of the same text score the same
    ids = policy.tokenizer.encode(GOOD)
    logp = policy.logprobs(policy.encode_prompts([PROBLEM.prompt]), [ids])[0].tolist()
    recorded = completion_steps(Completion(0, ids, GOOD, logp, "eos"), "\n", policy.tokenizer.decode)
    assert ConfidenceScorer()([PROBLEM], [recorded])[0] == pytest.approx(scores, rel=1e-5)


def test_outcome_at_terminal_replaces_the_last_score_of_finished_prefixes_only():
    confident = lambda problems, prefixes: [[0.5] * len(TASK.steps(p)) for p in prefixes]  # noqa: E731
    scorer = OutcomeAtTerminal(confident, VerifierReward(TASK))
    unfinished = "7*3=21 | 25 21\n"
    n = len(TASK.steps(GOOD))
    assert scorer([PROBLEM] * 3, [GOOD, BAD, unfinished]) == [[0.5] * (n - 1) + [1.0], [0.5, 0.0], [0.5]]
    half = OutcomeAtTerminal(confident, VerifierReward(TASK), weight=0.5)
    assert half([PROBLEM], [GOOD]) == [[0.5] * (n - 1) + [0.75]]
    assert ends_with_answer(PROBLEM, GOOD) and not ends_with_answer(PROBLEM, unfinished)


def test_weighted_sum_of_scorers():
    both = Weighted([(GoldScorer(TASK), 0.5), (lambda ps, xs: [[1.0] for _ in xs], 0.5)])
    assert both([PROBLEM], ["hello\n"]) == [[0.5]]


@pytest.mark.parametrize("how,expected", [("last", 0.2), ("min", 0.2), ("prod", 0.9 * 0.5 * 0.2),
                                          ("mean", (0.9 + 0.5 + 0.2) / 3)])
def test_aggregate(how, expected):
    assert aggregate([0.9, 0.5, 0.2], how) == pytest.approx(expected)
    assert aggregate([], how) == 0.0


def test_accounts_charge_a_model_scorers_tokens_to_the_problems_that_sent_them():
    class Counting:
        def __init__(self):
            self.ledger = Ledger()

        def __call__(self, problems, prefixes):
            self.ledger.charge_reward(30, n_params=10)
            return [[0.0] for _ in prefixes]

    accounts = Accounts(2, cap=100)
    accounts.score(Counting(), [PROBLEM] * 3, ["ab", "cd", "ef"], owners=[0, 0, 1])  # 4 chars vs 2 chars
    assert [a.reward_tokens for a in accounts.ledgers] == [pytest.approx(20.0), pytest.approx(10.0)]
    assert sum(a.reward_flops for a in accounts.ledgers) == pytest.approx(600.0)
