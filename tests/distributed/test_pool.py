"""Workers on a local Ray cluster started here: the same answers as one process, weights that follow the learner,
stale calls refused, and a worker killed mid-round replaced without losing or doubling a problem."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace

import pytest
import ray
import torch
from conftest import STEP_TOKENIZER

from searchlearn.config import ConfigError
from searchlearn.distributed.pool import StaleWeights, WorkerPool, _check_address
from searchlearn.distributed.shard import WithPolicy, map_problems, shards, use_pool
from searchlearn.learn.rollout import sample_rollout
from searchlearn.loop.config import PhaseConfig, SearcherConfig
from searchlearn.loop.learners import round_rewards
from searchlearn.loop.rounds import _search
from searchlearn.reward.pipeline import label_solutions
from searchlearn.reward.scorers import make_scorer
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.budget import Budget
from searchlearn.search.evaluate import evaluate
from searchlearn.search.registry import SEARCHERS
from searchlearn.search.scripted import stepping_policy
from searchlearn.tasks.countdown import CountdownTask
from searchlearn.types import SamplingParams

TASK = CountdownTask()
PROBLEMS = TASK.problems("test", 12, seed=1)
PROBLEMS = PROBLEMS + [replace(PROBLEMS[3], id="dup")]  # a repeated prompt: its copies must stay apart


def policy():
    return stepping_policy(STEP_TOKENIZER)


@pytest.fixture(scope="module")
def pool(ray_cluster):
    with WorkerPool(2) as p:
        yield p


def test_shards_are_balanced_ordered_and_keep_equal_prompts_together():
    assert shards(["a", "b", "c", "d", "e"], 2) == [[0, 1, 2], [3, 4]]
    assert shards(["a", "b", "a", "c"], 2) == [[0, 2], [1, 3]]  # both "a"s on one worker, in their order
    assert shards(["a"], 3) == [[0], [], []]


def run_searches(p) -> list:
    scorer = WithPolicy(make_scorer, ("confidence", TASK))
    out = []
    for name in ("beam", "dvts", "mcts", "bon"):
        spec = SEARCHERS[name]
        cfg = spec.config(max_new_tokens=40, step_tokens=12, seed=5)
        out.append(map_problems(spec.search, PROBLEMS, p, TASK, scorer, Budget(4), cfg))
    return out


def summary(results) -> list:
    return [(r.problem_id, r.answer, [t.completion for t in r.trajectories]) for r in results]


def test_two_workers_give_the_one_process_answers_and_ledgers(pool):
    local, remote = policy(), policy()
    expected = run_searches(local)
    with use_pool(pool):
        got = run_searches(remote)
        ev = evaluate(remote, TASK, PROBLEMS, n=4, ks=(1, 4), max_new_tokens=40, seed=3)
        rollout = sample_rollout(remote, PROBLEMS, VerifierReward(TASK), SamplingParams(n=3, max_new_tokens=40,
                                                                                          seed=9))
    labels = label_solutions(local, TASK, PROBLEMS[:6], samples=2, rollouts=2, max_new_tokens=24, seed=4)
    with use_pool(pool):
        sharded = label_solutions(remote, TASK, PROBLEMS[:6], samples=2, rollouts=2, max_new_tokens=24, seed=4)
    assert [(x.steps, x.soft, x.hard) for x in sharded] == [(x.steps, x.soft, x.hard) for x in labels]  # MC labels
    for a, b in zip(expected, got):
        assert summary(a) == summary(b)
        assert sum(r.ledger.generated_tokens for r in a) == pytest.approx(sum(r.ledger.generated_tokens for r in b))
    assert len(set(summary(expected[3])[3][2])) > 1  # the searches did sample
    assert summary(expected[3])[3][2] != summary(expected[3])[-1][2]  # the repeated prompt got its own samples
    assert ev["metrics"] == evaluate(local, TASK, PROBLEMS, n=4, ks=(1, 4), max_new_tokens=40, seed=3)["metrics"]
    reference = sample_rollout(local, PROBLEMS, VerifierReward(TASK), SamplingParams(n=3, max_new_tokens=40, seed=9))
    assert rollout.action_ids == reference.action_ids and rollout.prompt_ids == reference.prompt_ids
    assert remote.ledger.generated_tokens == local.ledger.generated_tokens  # workers' tokens charged to the caller


def test_workers_sample_with_the_learners_latest_weights(pool):
    learner = policy()
    params = SamplingParams(n=2, max_new_tokens=30, seed=1)
    from searchlearn.learn.rollout import sample_completions

    with use_pool(pool):
        before = map_problems(sample_completions, PROBLEMS, learner, params)
        version = pool.version
        with torch.no_grad():  # a learner update: the weights change in place
            for p in learner.model.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        after = map_problems(sample_completions, PROBLEMS, learner, params)
    assert pool.version == version + 1
    here = sample_completions(PROBLEMS, learner, params)
    assert [[c.token_ids for c in g] for g in after] == [[c.token_ids for c in g] for g in here]
    assert [[c.token_ids for c in g] for g in after] != [[c.token_ids for c in g] for g in before]


def test_a_call_needing_newer_weights_than_published_is_refused(pool):
    pool.sync(policy())
    with pytest.raises(ray.exceptions.RayTaskError) as e:
        ray.get(pool.workers[0].run.remote((-1, 0), pool.version + 1, map_problems, [], []))
    assert isinstance(e.value.cause, StaleWeights)


def test_a_worker_killed_mid_round_is_replaced_and_every_problem_runs_once(pool):
    phase = PhaseConfig(learner="expert_iteration", reward="confidence", searcher=SearcherConfig(
        name="beam", n=8, max_new_tokens=48, options={"step_tokens": 12}))
    rewards = round_rewards(phase.reward, TASK)  # the search builds its scorer where it runs
    problems = TASK.problems("train", 160, seed=4)
    expected = _search(1, phase, problems, policy(), TASK, rewards, 11, lambda record: None)
    learner = policy()
    pool.sync(learner)
    out: dict = {}

    def round_search():
        with use_pool(pool):
            out["stage"] = _search(1, phase, problems, learner, TASK, rewards, 11, lambda record: None)

    thread = threading.Thread(target=round_search)
    pids, replaced = pool.pids(), pool.replaced
    earlier = set(ray.get(pool.board.starts.remote()))  # calls of the tests before this one
    thread.start()
    deadline = time.time() + 60
    while time.time() < deadline and not any(
            worker == 1 for _, worker in set(ray.get(pool.board.starts.remote())) - earlier):
        time.sleep(0.02)  # until worker 1 has started its shard of this round
    os.kill(pids[1], signal.SIGKILL)
    thread.join(timeout=120)
    stats, data = out["stage"]["stats"], out["stage"]["data"]
    assert pool.replaced == replaced + 1 and pool.waste.generated_tokens > 0
    assert pool.pids()[1] != pids[1]  # a new process took its place
    assert stats["search/trajectories"] == expected["stats"]["search/trajectories"]  # nothing lost or doubled
    assert stats["ledger/generated_tokens"] == expected["stats"]["ledger/generated_tokens"]
    assert data == expected["data"]


def test_bad_addresses_and_worker_counts_get_clear_errors(pool):
    with pytest.raises(ConfigError, match="no Ray cluster answers"):
        _check_address("127.0.0.1:1")
    with pytest.raises(ConfigError, match="--workers must be >= 1"):
        WorkerPool(0)
    with pytest.warns(UserWarning, match="3 workers × 1 threads on 2 CPUs"):
        WorkerPool(3).close()
