"""MCTS on hand-built trees: PUCT selection, backup, the expansion's expected-value backup, noise, the answer."""

import math
import random

import pytest

from searchlearn.search.budget import Budget
from searchlearn.search.mcts import (
    MCTSConfig,
    add_dirichlet,
    backup,
    mcts,
    most_visited_path,
    puct_select,
    select_leaf,
)
from searchlearn.search.scripted import EOS, ScriptedPolicy
from searchlearn.types import Node, Problem, SearchTree, Step, Verdict


def node(parent, prior_prob, visits, value_sum, text="x\n"):
    return Node(Step(text), parent=parent, prior_prob=prior_prob, visits=visits, value_sum=value_sum)


def two_level_tree() -> SearchTree:
    """root (N=10) → A (P=.8, N=2, W=1.0), B (P=.2, N=7, W=4.9); A → A1 (P=.5, N=1, W=.2), A2 (P=.5, N=1, W=.9)."""
    tree = SearchTree("t")
    tree.nodes[0].visits, tree.nodes[0].value_sum = 10, 6.0
    for parent, args in ((0, (0.8, 2, 1.0)), (0, (0.2, 7, 4.9)), (1, (0.5, 1, 0.2)), (1, (0.5, 1, 0.9))):
        tree.nodes.append(node(parent, *args))
        tree.nodes[parent].children.append(len(tree.nodes) - 1)
    return tree  # indices: A=1, B=2, A1=3, A2=4


def test_puct_selection_by_hand():
    tree = two_level_tree()
    # c = 1: A: .5 + .8·√10/3 = 1.343; B: .7 + .2·√10/8 = 0.779 -> A (the prior outweighs B's higher Q)
    assert puct_select(tree, 0, 1.0) == 1
    assert 0.5 + 0.8 * math.sqrt(10) / 3 == pytest.approx(1.3433, abs=1e-4)
    # c = 0: pure exploitation -> B (Q .7 > .5)
    assert puct_select(tree, 0, 0.0) == 2
    # under A (N=2): equal priors and visits, so Q decides: A2 (.9 > .2)
    assert puct_select(tree, 1, 1.0) == 4
    assert select_leaf(tree, 1.0) == 4
    assert select_leaf(tree, 0.0) == 2  # B has no children: a leaf


def test_backup_adds_a_visit_and_the_value_along_the_path():
    tree = two_level_tree()
    backup(tree, 4, 1.0)
    assert (tree.nodes[4].visits, tree.nodes[4].value_sum) == (2, pytest.approx(1.9))
    assert (tree.nodes[1].visits, tree.nodes[1].value_sum) == (3, pytest.approx(2.0))
    assert (tree.nodes[0].visits, tree.nodes[0].value_sum) == (11, pytest.approx(7.0))
    assert (tree.nodes[2].visits, tree.nodes[3].visits) == (7, 1)  # off-path nodes untouched
    assert tree.nodes[1].value == pytest.approx(2.0 / 3)


def test_most_visited_path_follows_visits():
    tree = two_level_tree()
    assert most_visited_path(tree) == 2  # B: 7 visits
    tree.nodes[1].visits = 9
    assert most_visited_path(tree) == 4  # A, then A2 (tie in visits, higher value)


def test_dirichlet_noise_mixes_priors_and_is_seeded():
    a, b = two_level_tree(), two_level_tree()
    add_dirichlet(a, 0, 0.3, 0.25, random.Random(1))
    add_dirichlet(b, 0, 0.3, 0.25, random.Random(1))
    priors = [a.nodes[c].prior_prob for c in a.nodes[0].children]
    assert sum(priors) == pytest.approx(1.0)
    assert priors == [b.nodes[c].prior_prob for c in b.nodes[0].children]
    assert all(0.75 * p0 <= p <= 0.75 * p0 + 0.25 for p, p0 in zip(priors, (0.8, 0.2)))


class TableScorer:
    """Scores each step by a lookup on its text."""

    def __init__(self, table):
        self.table, self.calls = table, 0

    def __call__(self, problems, prefixes):
        self.calls += 1
        return [[self.table.get(s.text, 0.0) for s in prefix] for prefix in prefixes]


def test_one_simulation_expands_evaluates_and_backs_up_the_expected_value():
    # k=4 samples at the root: "a" twice, "b", and an immediate eos -> priors .5, .25, .25
    policy = ScriptedPolicy(lambda prompt, n: ["a\n", "a\n", "b\n", EOS])
    scorer = TableScorer({"a\n": 0.8, "b\n": 0.4})
    cfg = MCTSConfig(k=4, simulations=1, final_rollout=False)
    [result] = mcts([Problem("p", "q\n")], policy, None, scorer, Budget(1, max_tokens=1000), cfg)
    tree = result.tree
    a, b, end = tree.nodes[0].children
    assert [tree.nodes[i].prior_prob for i in (a, b, end)] == [0.5, 0.25, 0.25]
    assert [tree.nodes[i].value for i in (a, b, end)] == [0.8, 0.4, 0.0]
    assert tree.nodes[end].terminal and tree.nodes[end].step.text == ""
    assert tree.nodes[0].visits == 1
    assert tree.nodes[0].value == pytest.approx(0.5 * 0.8 + 0.25 * 0.4 + 0.25 * 0.0)
    assert policy.calls == 1 and scorer.calls == 1


def test_batched_mcts_one_engine_call_per_iteration_and_terminal_reward():
    # every prompt: step "s" twice, then "answer 1", then eos; the terminal reward scores the finished text
    def script(prompt, n):
        depth = prompt.count("\n") - 1
        return [EOS if depth >= 3 else "answer 1\n" if depth == 2 else "s\n"] * n

    policy = ScriptedPolicy(script)
    scorer = TableScorer({"s\n": 0.5, "answer 1\n": 0.5})
    problems = [Problem(f"p{i}", f"q{i}\n") for i in range(3)]
    class Accepting:  # a task whose verifier accepts everything
        def verify(self, problem, text):
            return Verdict(1.0, "ok")

    cfg = MCTSConfig(k=2, simulations=4, final_rollout=False, verify_terminals=True)
    results = mcts(problems, policy, Accepting(), scorer, Budget(1, max_tokens=10_000), cfg)
    assert policy.calls == 4  # one per iteration, for all three problems
    assert all(len(prompts) == 3 for prompts in policy.prompts)
    for r, p in zip(results, problems):
        assert r.answer == "s\ns\nanswer 1\n"
        assert r.trajectories[0].reward == 1.0  # the terminal node valued by the terminal reward
        assert r.tree.nodes[0].visits == 4
