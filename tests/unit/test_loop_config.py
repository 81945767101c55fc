"""The loop's config layer: registries of names, clear errors, per-phase schedules, overrides, the shipped configs."""

from pathlib import Path

import pytest

from searchlearn.config import ConfigError, from_dict
from searchlearn.loop.config import (
    LoopConfig,
    PhaseConfig,
    SearcherConfig,
    load_loop_config,
)
from searchlearn.loop.learners import LEARNERS, expert_data, label_outcomes
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.reward.scorers import SCORERS
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.beam import BeamConfig
from searchlearn.search.registry import SEARCHERS
from searchlearn.tasks.countdown import CountdownTask
from searchlearn.tasks.math import MathTask
from searchlearn.types import Ledger, Problem, SearchResult, Trajectory

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_unknown_learner_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        PhaseConfig(learner="grpoo")
    message = str(e.value)
    assert "'grpoo'" in message and "valid learners" in message
    for name in ("expert_iteration", "dpo", "step_dpo", "grpo", "dr_grpo", "dapo", "rloo", "ppo", "tree_grpo", "vineppo"):
        assert name in message


def test_unknown_searcher_and_reward_list_the_valid_ones():
    with pytest.raises(ConfigError, match="valid searchers: beam, bon, dvts, mcts, revision"):
        SearcherConfig(name="astar")
    with pytest.raises(ConfigError, match="valid scorers: confidence, gold, learned, mc, selfeval, verifier"):
        PhaseConfig(reward="orm")


def test_a_bad_name_inside_a_phase_list_names_the_phase():
    with pytest.raises(ConfigError, match=r"phases\[1\].*valid learners"):
        from_dict(LoopConfig, {"phases": [{"learner": "grpo"}, {"learner": "nope"}]})
    with pytest.raises(ConfigError, match=r"phases\[0\].*valid keys"):
        from_dict(LoopConfig, {"phases": [{"learnr": "grpo"}]})


def test_step_dpo_needs_a_tree_searcher():
    with pytest.raises(ConfigError, match="needs a search tree.*beam, dvts, mcts"):
        PhaseConfig(learner="step_dpo", searcher=SearcherConfig(name="bon"))
    PhaseConfig(learner="step_dpo", searcher=SearcherConfig(name="mcts"))


def test_searcher_options_are_the_searchers_own_config_keys():
    cfg = SearcherConfig(name="beam", n=8, temperature=0.7, options={"width": 2, "aggregate": "min"})
    built = cfg.search_config(seed=5)
    assert isinstance(built, BeamConfig) and (built.width, built.aggregate, built.temperature, built.seed) == (
        2, "min", 0.7, 5)
    with pytest.raises(ConfigError, match="valid keys"):
        SearcherConfig(name="beam", options={"widht": 2})
    with pytest.raises(ConfigError, match="valid keys"):  # best-of-N's options are BestOfNConfig's
        SearcherConfig(name="bon", options={"width": 2})
    with pytest.raises(ConfigError, match="seed comes from the round"):
        SearcherConfig(name="mcts", options={"seed": 3})


def test_rounds_are_numbered_across_phases():
    cfg = from_dict(LoopConfig, {"phases": [{"rounds": 2, "learner": "expert_iteration"},
                                            {"rounds": 0, "learner": "dpo"}, {"rounds": 1, "learner": "grpo"}]})
    assert [(r, p.learner) for r, p in cfg.schedule()] == [(1, "expert_iteration"), (2, "expert_iteration"),
                                                           (3, "grpo")]
    assert cfg.rounds == 3
    with pytest.raises(ConfigError, match="at least one phase"):
        from_dict(LoopConfig, {"phases": [{"rounds": 0}]})


def test_overrides_index_phases_and_reach_searcher_options(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("phases:\n  - {learner: expert_iteration, searcher: {name: beam}}\n  - {learner: grpo}\n")
    cfg = load_loop_config(path, ["phases.1.learner=dapo", "phases.0.searcher.options.width=2", "phases.1.grpo.lr=3e-4",
                                  "eval.ks=[1, 2]", "eval.samples=4"])
    assert cfg.phases[1].learner == "dapo" and cfg.phases[1].grpo.lr == 3e-4
    assert cfg.phases[0].searcher.search_config(0).width == 2 and cfg.eval.ks == (1, 2)
    with pytest.raises(ConfigError, match="not an index"):
        load_loop_config(path, ["phases.2.rounds=1"])
    with pytest.raises(ConfigError, match="valid keys"):
        load_loop_config(path, ["phases.0.learnr=dpo"])


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_loop_configs_load(path):
    cfg = load_loop_config(path)
    assert cfg.rounds >= 1


def test_registries_are_complete():
    assert {"bon", "beam", "mcts", "revision"} <= set(SEARCHERS)
    assert set(SCORERS) == {"verifier", "gold", "confidence", "selfeval", "learned", "mc"}
    for name, spec in LEARNERS.items():
        assert spec.kind in ("search", "online"), name
        assert (spec.prepare is not None) == (spec.kind == "search"), name


class _Verifier:
    """Correct iff the completion says 'yes'."""

    def __call__(self, problems, completions):
        return [1.0 if "yes" in c else 0.0 for c in completions]


def test_expert_iteration_keeps_distinct_correct_trajectories_per_problem():
    tok = TaskTokenizer(words=("yes", "no"), max_number=20)
    problems = [Problem("a", "1 2 -> 3\n"), Problem("b", "2 2 -> 4\n")]
    texts = {"a": ["2+1=3 so yes\n", "1+2=3 yes\n", "1+2=3 yes\n", "1*2=2 no\n"], "b": ["2*2=5 no\n"]}
    results = [SearchResult(p.id, None, [Trajectory(p.id, p.prompt, t) for t in texts[p.id]], Ledger())
               for p in problems]
    label_outcomes(results, problems, _Verifier())
    assert [t.correct for t in results[0].trajectories] == [True, True, True, False]

    class Policy:
        tokenizer = tok

    phase = PhaseConfig(keep_per_problem=5)
    examples, stats = expert_data(results, problems, None, Policy(), phase, seed=0)
    assert stats["learn/examples"] == 2  # the duplicate of "1+2=3 yes" is kept once; problem b has none
    prompt, completion = examples[0]
    assert prompt[0] == tok.bos_id and completion[-1] == tok.eos_id
    assert tok.decode(completion[:-1]) == "1+2=3 yes\n"  # the shortest first
    examples, _ = expert_data(results, problems, None, Policy(), PhaseConfig(keep_per_problem=1), seed=0)
    assert [tok.decode(c[:-1]) for _, c in examples] == ["1+2=3 yes\n"]  # the shortest, not the first


def test_expert_iteration_mixes_in_solver_traces_of_the_round_problems():
    task = CountdownTask()
    tok = TaskTokenizer(words=task.words, digits=True)
    problems = task.problems("train", 6, seed=1)
    results = [SearchResult(p.id, None, [Trajectory(p.id, p.prompt, task.traces(p, "optimal")[0])], Ledger())
               for p in problems[:4]]
    label_outcomes(results, problems, VerifierReward(task))

    class Policy:
        tokenizer = tok

    examples, stats = expert_data(results, problems, task, Policy(), PhaseConfig(solver_traces=0.5), seed=3)
    assert stats == {"learn/examples": 6, "learn/solver_traces": 2}  # 4 kept + 0.5 × 4 solver traces
    for prompt, completion, trained in examples[4:]:
        text = tok.decode(completion)
        problem = next(p for p in problems if tok.decode(prompt) == p.prompt)
        assert task.verify(problem, text).correct and text.startswith("try ")  # the task's own search traces
        assert len(trained) == len(completion)
    again, _ = expert_data(results, problems, task, Policy(), PhaseConfig(solver_traces=0.5), seed=3)
    assert again == examples  # seeded by the round
    with pytest.raises(ConfigError, match="writes no solver traces"):
        expert_data(results, problems, MathTask(), Policy(), PhaseConfig(solver_traces=0.5), seed=3)
