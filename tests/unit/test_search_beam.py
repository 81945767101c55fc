"""Beam search and DVTS on a scripted policy: exact top-k, one engine call per depth, independent subtrees, budgets."""

import hashlib

import pytest

from searchlearn.search.beam import BeamConfig, beam_search, top_k
from searchlearn.search.budget import Budget
from searchlearn.search.dvts import dvts
from searchlearn.search.scripted import EOS, ScriptedPolicy
from searchlearn.tasks.countdown import CountdownTask
from searchlearn.types import Problem

TASK = CountdownTask()


def steps_of(prompt: str) -> list[str]:
    return prompt.split("\n")[1:-1]  # the prompt is one line; every step ends in "\n"


def tree_script(depth: int = 2, letters: str = "abc"):
    """Children of a path are its last step's name plus a letter; after `depth` steps the policy stops (eos).
    At the root, the name is the number of times the root has been expanded (so DVTS subtrees differ)."""
    seen: dict[str, int] = {}

    def script(prompt, n):
        steps = steps_of(prompt)
        if len(steps) >= depth:
            return [EOS] * n
        seen[prompt] = seen.get(prompt, -1) + 1
        tag = steps[-1] if steps else str(seen[prompt])
        return [f"{tag}{c}\n" for c in letters[:n]]

    return script


class TableScorer:
    """Scores each step by its text: a dict lookup, or a function of the text."""

    def __init__(self, table):
        self.table, self.calls, self.sizes = table, 0, []

    def __call__(self, problems, prefixes):
        self.calls += 1
        self.sizes.append(len(prefixes))
        score = self.table if callable(self.table) else self.table.__getitem__
        return [[score(s.text.strip()) for s in prefix] for prefix in prefixes]


SCORES = {"0a": 0.9, "0b": 0.1, "0c": 0.5, "0aa": 0.2, "0ab": 0.7, "0ac": 0.3, "0ca": 0.8, "0cb": 0.05, "0cc": 0.6,
          "0ba": 0.0, "0bb": 0.0, "0bc": 0.0}


def test_top_k_orders_by_score_then_position():
    assert top_k([10, 11, 12, 13], [0.5, 0.9, 0.5, 0.1], 3) == [11, 10, 12]
    assert top_k([10, 11], [0.5, 0.9], 0) == []


def hashed(text: str) -> float:
    """A fixed pseudo-random score per step text (distinct for these texts)."""
    return int(hashlib.md5(text.encode()).hexdigest(), 16) % 10007 / 10007


def test_beam_keeps_exactly_the_top_k_and_batches_one_call_per_depth():
    problems = [Problem(f"p{i}", f"q{i}\n", {"nums": [1, 2], "target": 3}) for i in range(3)]
    policy, scorer = ScriptedPolicy(tree_script()), TableScorer(hashed)
    results = beam_search(problems, policy, TASK, scorer, Budget(6), BeamConfig(width=3))  # k = 6 // 3 = 2
    assert policy.calls == 3  # one engine call per depth for all three problems (depth 3: every beam stops)
    assert [len(p) for p in policy.prompts] == [6, 6, 6]  # 3 problems × 2 beams (depth 1: 2 copies of the root)
    assert scorer.calls == 3 and scorer.sizes == [18, 18, 6]  # every new candidate scored in one call per depth
    for r in results:
        tree = r.tree
        kept = None
        for depth in (1, 2):
            candidates = [i for i in range(1, len(tree.nodes)) if len(tree.path(i)) == depth]
            assert len(candidates) == 6  # n = k × width candidates at every depth
            if kept is not None:
                assert {tree.nodes[i].parent for i in candidates} == set(kept)  # only the kept beams grew
            best = sorted(candidates, key=lambda i: -hashed(tree.nodes[i].step.text.strip()))[:2]
            kept = [i for i in candidates if tree.nodes[i].children]
            assert set(kept) == set(best)
        assert sorted(t.completion for t in r.trajectories) == sorted(tree.text(i) for i in kept)
        assert r.answer == max(r.trajectories, key=lambda t: t.reward).completion


def test_lookahead_scores_a_candidate_by_its_greedy_continuation():
    # without lookahead 0a (.9) wins at depth 1; one greedy step past each (0aa .2 vs 0ca .8) makes 0c win
    problem = Problem("p", "q\n", {"nums": [1, 2], "target": 3})
    policy, scorer = ScriptedPolicy(tree_script()), TableScorer(SCORES)
    cfg = BeamConfig(width=3, lookahead=1, max_steps=2, step_tokens=32)  # two-step paths end: no lookahead past them
    [r] = beam_search([problem], policy, TASK, scorer, Budget(3), cfg)
    assert policy.calls == 3  # depth 1: expansion + one lookahead step batched over its 3 candidates; depth 2
    assert policy.prompts[1] == ["q\n0a\n", "q\n0b\n", "q\n0c\n"] and policy.params[1].temperature == 0.0
    assert r.trajectories[0].completion == "0c\n0ca\n"
    assert r.ledger.generated_tokens == 3 * 3 + 3 * 4 + 3 * 4  # expansion, lookahead, depth 2


def test_budget_stops_expansion_before_the_cap():
    problem = Problem("p", "q\n", {"nums": [1, 2], "target": 3})
    policy = ScriptedPolicy(tree_script())
    cfg = BeamConfig(width=3, step_tokens=32)  # one beam's expansion may cost 3 × 32 = 96 tokens
    [r] = beam_search([problem], policy, TASK, TableScorer(SCORES), Budget(6, max_tokens=100), cfg)
    assert policy.calls == 1  # 100 − 9 spent = 91 < 96 left: no second depth
    assert r.ledger.generated_tokens == 9 <= 100
    assert r.answer == "0a\n"  # unfinished: the best live beam


def test_dvts_subtrees_are_independent():
    scores = {"0a": 0.9, "0b": 0.8, "1a": 0.2, "1b": 0.3, "0aa": 0.5, "0ab": 0.6, "0ba": 0.0, "0bb": 0.0,
              "1aa": 0.0, "1ab": 0.0, "1ba": 0.7, "1bb": 0.1}
    problem = Problem("p", "q\n", {"nums": [1, 2], "target": 3})

    def run(table):
        policy = ScriptedPolicy(tree_script(letters="ab"))
        [r] = dvts([problem], policy, TASK, TableScorer(table), Budget(4), BeamConfig(width=2))  # 2 subtrees
        return r, policy

    r, policy = run(scores)
    assert policy.calls == 3
    by_group = {}
    for i in r.tree.terminals():
        path = r.tree.path(i)
        groups = {r.tree.nodes[j].group for j in path}
        assert len(groups) == 1  # a subtree's path never leaves it
        by_group[groups.pop()] = r.tree.text(i)
    # subtree 1 keeps its own best child 1b (.3), though subtree 0's 0b (.8) scores higher
    assert by_group == {0: "0a\n0ab\n", 1: "1b\n1ba\n"}
    # rescoring subtree 0 leaves subtree 1's search unchanged
    rescored = {**scores, "0a": 0.0, "0b": 0.95, "0ba": 0.4, "0bb": 0.45}
    r2, _ = run(rescored)
    texts = {r2.tree.nodes[i].group: r2.tree.text(i) for i in r2.tree.terminals()}
    assert texts == {0: "0b\n0bb\n", 1: "1b\n1ba\n"}


def test_beam_config_checks():
    with pytest.raises(ValueError):
        BeamConfig(aggregate="median")
    with pytest.raises(ValueError):
        BeamConfig(width=0)
    with pytest.raises(ValueError):
        Budget(0)
