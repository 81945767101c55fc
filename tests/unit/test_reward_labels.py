"""Monte-Carlo step labels (Math-Shepherd) on a scripted policy with known rollout outcomes, and Q-margin pairs."""

import pytest

from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.reward.labels import (
    StepLabels,
    consensus,
    mc_labels,
    mc_targets,
    q_margin_pairs,
    step_prefixes,
)
from searchlearn.search.scripted import EOS, ScriptedPolicy
from searchlearn.reward.models import make_examples
from searchlearn.tasks.countdown import WORDS, CountdownTask
from searchlearn.types import Problem

TASK = CountdownTask()
P = Problem("p", "3 7 25 -> 46\n", {"nums": [3, 7, 25], "target": 46})
S1, S2, S3 = "7*3=21 | 25 21\n", "25+21=46 vs 46 yes\n", "answer 25+(7*3)\n"
RIGHT, WRONG = "answer 25+(7*3)\n" + EOS, "answer 25+7+3\n" + EOS


def scripted():
    """After step 1: 3 of 4 rollouts correct. After steps 1–2: 1 of 4. (The full solution is terminal: no rollouts.)"""
    outcomes = {P.prompt + S1: [RIGHT, RIGHT, WRONG, RIGHT], P.prompt + S1 + S2: [WRONG, WRONG, RIGHT, WRONG]}

    def script(prompt, n):
        return outcomes.get(prompt, [WRONG] * n)[:n]

    return ScriptedPolicy(script)


def test_mc_targets_hard_is_any_correct_soft_is_fraction():
    assert mc_targets([[1, 0, 0, 0], [0, 0], [1, 1, 1.0], []]) == ([1.0, 0.0, 1.0, 0.0], [0.25, 0.0, 1.0, 0.0])


def test_mc_labels_on_known_rollouts_one_batched_call():
    policy = scripted()
    [rec] = mc_labels(policy, TASK, [P], [S1 + S2 + S3], m=4)
    assert rec.steps == [S1, S2, S3]
    assert rec.soft == [0.75, 0.25, 1.0]
    assert rec.hard == [1.0, 1.0, 1.0]
    assert rec.outcome == 1.0
    assert policy.calls == 1 and policy.prompts[0] == [P.prompt + S1, P.prompt + S1 + S2]  # terminal step: no rollouts


def test_mc_labels_within_budget_give_each_rollout_what_its_prefix_left():
    """VinePPO's values: max_new_tokens bounds prefix + rollout, so a rollout from a later step may write less (the
    scripted policy's tokens are characters); by default every rollout gets the whole budget."""
    budget = len(S1 + S2) + len(RIGHT) - len(EOS)  # a rollout after S1 + S2 has room for the answer, not its eos
    policy = scripted()
    [rec] = mc_labels(policy, TASK, [P], [S1 + S2 + S3], m=4, max_new_tokens=budget, within_budget=True)
    assert policy.budgets == [[budget - len(S1), budget - len(S1 + S2)]]
    assert rec.soft == [0.75, 0.25, 1.0]  # the answer line fits; only the eos is cut, which verify does not need
    tight = scripted()
    [rec] = mc_labels(tight, TASK, [P], [S1 + S2 + S3], m=4, max_new_tokens=len(S1 + S2) + 5, within_budget=True)
    assert tight.budgets == [[len(S2) + 5, 5]] and rec.soft[1] == 0.0  # 5 characters cannot hold an answer
    free = scripted()
    mc_labels(free, TASK, [P], [S1 + S2 + S3], m=4, max_new_tokens=len(S1 + S2) + 5)
    assert free.budgets == [None]


def test_mc_labels_hard_zero_when_no_rollout_succeeds_and_wrong_answer_terminal():
    policy = ScriptedPolicy(lambda prompt, n: [WRONG] * n)
    [rec] = mc_labels(policy, TASK, [P], [S1 + "answer 3+7+25\n"], m=3)
    assert rec.hard == [0.0, 0.0] and rec.soft == [0.0, 0.0] and rec.outcome == 0.0


def test_step_prefixes():
    assert step_prefixes(["a\n", "b\n"]) == ["a\n", "a\nb\n"]


def test_q_margin_pairs_prefers_the_higher_q_sibling():
    a = StepLabels(P, ["x\n", "good\n"], soft=[0.5, 0.9])
    b = StepLabels(P, ["x\n", "bad\n"], soft=[0.5, 0.2])
    c = StepLabels(P, ["x\n", "meh\n"], soft=[0.5, 0.7])
    pairs = q_margin_pairs([a, b, c], margin=0.5)
    assert len(pairs) == 1
    assert (pairs[0].prefix, pairs[0].chosen, pairs[0].rejected) == (("x\n",), "good\n", "bad\n")
    assert pairs[0].margin == pytest.approx(0.7)
    assert len(q_margin_pairs([a, b, c], margin=0.1)) == 2


def test_a_backed_out_step_gets_label_zero():
    """A dead end (25-7=18) whose rollouts back up to the start and then solve the problem: the rollout's success
    says nothing about the dead end, so with step_only its label is 0 (Math-Shepherd's plain rollout would say 1)."""
    dead = "25-7=18 | 3 18\n"
    recover = "back | 3 7 25\n7*3=21 | 25 21\n25+21=46 vs 46 yes\nanswer 25+(7*3)\n" + EOS
    stay = "18+3=21 vs 46 no\nback | 3 18\n18*3=54 vs 46 no\n" + EOS  # explores below the step: no backing out
    policy = ScriptedPolicy(lambda prompt, n: ([recover, recover, stay] if prompt == P.prompt + dead else [WRONG] * n))
    [rec] = mc_labels(policy, TASK, [P], [dead + "answer 25-7+3\n"], m=3)
    assert rec.soft[0] == 0.0 and rec.hard[0] == 0.0
    [plain] = mc_labels(ScriptedPolicy(policy.script), TASK, [P], [dead + "answer 25-7+3\n"], m=3, step_only=False)
    assert plain.soft[0] == pytest.approx(2 / 3) and plain.hard[0] == 1.0
    assert TASK.backs_out(P, dead, recover) and not TASK.backs_out(P, dead, stay)
    assert not TASK.backs_out(P, S1, "back | 25 21\n" + S2)  # restating the step's own state is not backing out


def test_consensus_keeps_steps_where_mc_and_the_judge_agree():
    """Hard labels [1, 0, 1] against a judge's [0.9, 0.7, 0.2]: agree on step 0 only; a PRM then trains on it alone,
    an ORM on the outcome as before."""
    problem = Problem("p", "3 7 25 -> 46\n", {"nums": [3, 7, 25], "target": 46})
    r = StepLabels(problem, ["7*3=21 | 25 21\n", "25-21=4 | 4\n", "answer 4\n"], hard=[1.0, 0.0, 1.0],
                   soft=[0.5, 0.0, 0.75], outcome=0.0)
    (kept,) = consensus([r], [[0.9, 0.7, 0.2]])
    assert kept.keep == [True, False, False] and kept.soft == r.soft and r.keep is None
    tok = TaskTokenizer(WORDS, digits=True)
    (full,) = make_examples(tok, [r], "prm")
    (only,) = make_examples(tok, [kept], "prm")
    assert only.positions == full.positions[:1] and only.targets == [0.5]
    assert make_examples(tok, [kept], "orm")[0].targets == [0.0]
    with pytest.raises(ValueError, match="2 judge scores for 3 steps"):
        consensus([r], [[0.9, 0.7]])


def test_monte_carlo_scorer_values_each_step_by_its_rollouts_and_reseeds_by_content():
    from searchlearn.config import ConfigError
    from searchlearn.reward.montecarlo import MonteCarloScorer
    from searchlearn.reward.scorers import make_scorer

    policy = scripted()
    scorer = make_scorer("mc:4", TASK, policy)
    assert isinstance(scorer, MonteCarloScorer) and scorer.rollouts == 4
    assert scorer([P], [S1 + S2 + S3]) == [[0.75, 0.25, 1.0]]
    assert scorer.ledger.reward_tokens == 0  # rollouts are the policy's tokens, not a reward model's
    assert scorer.with_policy("other").policy == "other" and scorer.with_policy("other").rollouts == 4
    with pytest.raises(ConfigError, match="mc:K"):
        make_scorer("mc:x", TASK, policy)
