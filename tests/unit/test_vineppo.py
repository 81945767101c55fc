"""VinePPO through the loop's learner: Monte-Carlo values after every step, their rollouts counted as generated."""

from conftest import STEP_TOKENIZER

from searchlearn.learn.grpo import GRPOConfig
from searchlearn.loop.learners import LEARNERS, round_rewards
from searchlearn.search.scripted import stepping_policy
from searchlearn.tasks.countdown import CountdownTask


def test_vineppo_rolls_out_from_every_step_and_counts_those_tokens():
    task = CountdownTask()
    policy = stepping_policy(STEP_TOKENIZER)
    cfg = GRPOConfig(steps=2, prompts_per_step=2, group_size=2, max_new_tokens=24, lr=1e-2, seed=0, log_every=1,
                     vine_rollouts=2)
    records = []
    spec = LEARNERS["vineppo"]
    before = policy.ledger.copy()
    spec.train(policy, task.problems("train", 8), cfg, round_rewards("verifier", task), None, records.append, "vine")
    value_tokens = sum(r["ledger/value_rollout_tokens"] for r in records)
    sampled = policy.ledger.since(before).generated_tokens
    assert value_tokens > 0  # the random policy writes steps, and each non-final one is rolled out from twice
    assert sum(r["count/generated_tokens"] for r in records) == sampled  # rollouts + value rollouts, nothing else
    assert sum(r["ledger/prefilled_tokens"] for r in records) == policy.ledger.since(before).prefilled_tokens > 0
    assert all(r["count/generated_tokens"] > r["ledger/value_rollout_tokens"] for r in records)
