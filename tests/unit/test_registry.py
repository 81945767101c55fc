"""Adding a searcher, a scorer or a learner is one function plus one registry line: toy ones registered here run
through the sweep, the CLI's choices and the loop's config checks like the built-in ones."""

import pytest

from searchlearn.config import ConfigError
from searchlearn.loop.config import PhaseConfig, SearcherConfig
from searchlearn.loop.learners import LEARNERS, LearnerSpec
from searchlearn.registry import Registry
from searchlearn.reward.scorers import SCORERS, make_scorer
from searchlearn.search.best_of_n import sample
from searchlearn.search.registry import SEARCHERS, SearcherSpec
from searchlearn.search.scripted import EOS, ScriptedPolicy
from searchlearn.search.steps import SearchConfig
from searchlearn.search.sweep import SweepConfig, sweep
from searchlearn.tasks.countdown import CountdownTask
from searchlearn.types import Problem, SamplingParams

TASK = CountdownTask()
PROBLEM = Problem("p", "3 4 -> 7\n", {"nums": [3, 4], "target": 7})


def greedy(problems, policy, task, scorer, budget, cfg=None):
    """A toy searcher: one greedy sample per problem, whatever the budget."""
    cfg = cfg or SearchConfig()
    results = sample(problems, policy, task, SamplingParams(n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens))
    for r in results:
        r.answer = r.trajectories[0].completion
    return results


class LengthScorer:
    """A toy process scorer: longer steps score lower."""

    def __call__(self, problems, prefixes):
        return [[1.0 / (1 + len(s)) for s in TASK.steps(x if isinstance(x, str) else "".join(t.text for t in x))]
                for x in prefixes]


@pytest.fixture
def toys():
    SEARCHERS.register("greedy", SearcherSpec(greedy, SearchConfig))
    SCORERS.register("length", lambda task, policy, arg: LengthScorer())
    LEARNERS.register("noop", LearnerSpec("search", "sft", train=lambda *a: {"steps": 0},
                                          prepare=lambda *a: ([], {})))
    yield
    for registry, name in ((SEARCHERS, "greedy"), (SCORERS, "length"), (LEARNERS, "noop")):
        registry.unregister(name)


def test_toy_searcher_scorer_and_learner_plug_in(toys):
    policy = ScriptedPolicy(lambda prompt, n: ["3+4=7 vs 7 yes\nanswer 3+4\n" + EOS] * n)
    rows = sweep(policy, TASK, [PROBLEM], SweepConfig(strategies=("greedy",), budgets=(1, 4), scorer="length"))
    assert [(r["strategy"], r["budget"], r["accuracy"]) for r in rows] == [("greedy", 1, 1.0), ("greedy", 4, 1.0)]
    assert isinstance(make_scorer("length", TASK), LengthScorer)
    phase = PhaseConfig(learner="noop", reward="length", searcher=SearcherConfig(name="greedy", options={"top_p": 0.5}))
    assert phase.searcher.search_config(seed=3).top_p == 0.5

    from searchlearn.cli.main import parser

    args = parser().parse_args(["eval", "--model", "m", "--search", "greedy"])
    assert args.search == "greedy"


def test_unknown_names_list_the_registered_ones(toys):
    with pytest.raises(ConfigError, match="unknown searcher 'astar'; valid searchers: .*greedy"):
        SEARCHERS["astar"]
    with pytest.raises(ConfigError, match="valid scorers: .*length"):
        make_scorer("lenght", TASK)
    with pytest.raises(ConfigError, match="scorer 'learned' needs the reward model's directory"):
        make_scorer("learned", TASK)


def test_a_name_is_registered_once():
    registry = Registry("widget", {"a": 1})
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", 2)
    registry.register("a", 3, replace=True)
    assert registry["a"] == 3 and registry.names() == ["a"] and "a" in registry and len(registry) == 1
