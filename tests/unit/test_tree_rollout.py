import random

import pytest
import torch
from conftest import tiny_model

from searchlearn.learn.advantages import grpo_advantages, tree_values, treerl_advantages, treerpo_advantages
from searchlearn.learn.grpo import GRPOConfig, collect, recipe, train_grpo
from searchlearn.learn.rollout import Rollout
from searchlearn.learn.tree import prefix_tree
from searchlearn.learn.tree_rollout import tree_advantages
from searchlearn.learn.tree_rollout import TreeShape, branch_points, open_turn, sample_trees
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.types import Completion, Problem, SamplingParams

TOK = TaskTokenizer(words=(), max_number=20)
PROBLEMS = [Problem(f"p{i}", f"{i} {i + 1} -> {2 * i + 1}\n") for i in range(4)]


def sevens(problems, completions):
    return [float("7" in c.text) for c in completions]


def test_branch_points_are_distinct_step_starts_or_the_most_surprising_tokens():
    text = {1: "a", 2: "\n", 3: "b"}.get
    chains = [Completion(0, [1, 2, 3, 2, 1], "", [-0.1, -0.2, -3.0, -0.1, -0.5], "eos"),
              Completion(0, [1, 2, 1], "", [-0.1, -0.2, -0.3], "eos")]
    step = TreeShape(1, 1, 3, 1, "step")
    points = branch_points(chains, 3, step, text, random.Random(0))
    # step starts: after token 1 ("\n") of both chains (one prefix [1, 2]) and after token 3 of chain 0
    assert sorted(set(points)) == [(0, 2), (0, 4)] and len(points) == 3
    surprise = branch_points(chains, 2, TreeShape(1, 1, 2, 1, "surprisal"), text, random.Random(0))
    assert surprise == [(0, 2), (0, 4)]  # −log π 3.0 then 0.5 (chain 1's 0.3 at position 2 repeats the prefix [1, 2])
    # a prefix branched from at an earlier level is passed over while others remain (next: −log π 0.2 at [1])
    assert branch_points(chains, 2, TreeShape(1, 1, 2, 1, "surprisal"), text, random.Random(0), {(1, 2)}) == [(0, 4),
                                                                                                              (0, 1)]
    assert branch_points([Completion(0, [1], "", [-1.0], "eos")], 2, step, text, random.Random(0)) == [(0, 0)] * 2


def test_open_turn_is_the_models_text_since_the_last_answer():
    episode = Completion(0, [1, 2, 3, 4, 5, 6], "", [0.0] * 6, "eos", [True, True, False, False, True, True])
    decode = lambda ids: ",".join(map(str, ids))  # noqa: E731
    assert [open_turn(episode, p, decode) for p in (0, 2, 4, 5, 6)] == ["", "1,2", "", "5", "5,6"]


def test_sample_trees_continues_each_branch_from_its_prefix():
    policy = LocalPolicy(tiny_model(0, TOK.vocab_size), TOK)
    shape = TreeShape(roots=2, levels=1, points=2, children=2, branch_at="surprisal")
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=3)
    groups = sample_trees(PROBLEMS[:2], policy, params, shape)
    assert [len(g) for g in groups] == [shape.leaves] * 2 == [10, 10]
    text = lambda t: TOK.decode([t])  # noqa: E731
    for i, group in enumerate(groups):
        assert all(c.prompt_index == i and len(c.token_ids) == len(c.logprobs) for c in group)
        for m in range(2):  # root m's subtree: its chain, then 2 children of each of its 2 branch points
            chain, branches = group[5 * m], group[5 * m + 1 : 5 * m + 5]
            points = branch_points([chain], 2, shape, text, random.Random(0))
            for k, (_, p) in enumerate(points):
                for c in branches[2 * k : 2 * k + 2]:
                    assert c.token_ids[:p] == chain.token_ids[:p] and c.logprobs[:p] == chain.logprobs[:p]
    again = sample_trees(PROBLEMS[:2], policy, params, shape)
    assert [c.token_ids for g in groups for c in g] == [c.token_ids for g in again for c in g]  # seeded


def test_every_leaf_keeps_within_the_chains_budget():
    """A branch writes only what its prefix left of max_new_tokens, so no leaf is longer than a chain may be (the
    engine never stops at eos here: every chain uses its whole budget, every branch must be cut) and the ledger
    charges each branch its own tokens only."""
    policy = LocalPolicy(tiny_model(0, TOK.vocab_size), TOK)
    policy.engine.eos_ids = frozenset()
    calls = []
    generate_ids = policy.generate_ids
    policy.generate_ids = lambda ids, params, **kw: calls.append((ids, kw.get("budgets"))) or generate_ids(ids, params,
                                                                                                          **kw)
    shape = TreeShape(roots=2, levels=2, points=2, children=2, branch_at="surprisal")
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=9, seed=1)
    groups = sample_trees(PROBLEMS[:3], policy, params, shape)
    leaves = [c for g in groups for c in g]
    assert len(leaves) == 3 * shape.leaves and [len(c.token_ids) for c in leaves] == [9] * len(leaves)
    assert all(c.finish_reason == "length" for c in leaves)
    prompts = {tuple(ids) for ids in policy.encode_prompts([p.prompt for p in PROBLEMS[:3]])}
    branch_tokens = 0
    for ids, budgets in calls[1:]:  # one call per level: each row's prompt is a problem's prompt + a prefix
        for row, budget in zip(ids, budgets):
            prompt = next(p for p in prompts if tuple(row[: len(p)]) == p)
            assert budget == 9 - (len(row) - len(prompt))
            branch_tokens += shape.children * budget
    assert policy.ledger.generated_tokens == 3 * 2 * 9 + branch_tokens < 9 * len(leaves)


def test_tree_advantages_train_each_segment_once_with_its_treerl_advantage():
    policy = LocalPolicy(tiny_model(0, TOK.vocab_size), TOK)
    cfg = GRPOConfig(steps=1, prompts_per_step=2, group_size=2, max_new_tokens=6, seed=0, tree_levels=1,
                     tree_points=1, tree_children=2)
    rollout, stats = collect(policy, PROBLEMS, 0, cfg, sevens, tree=True)
    assert rollout.rewards.shape == (2, cfg.tree_shape().leaves) == (2, 6)
    advantages = tree_advantages(rollout, treerl_advantages)  # (B, T-1)
    mask = rollout.batch.action_mask
    assert advantages.shape == mask.shape
    for n in range(2):
        rows = range(n * 6, (n + 1) * 6)
        seen = set()
        for r in rows:
            p = len(rollout.prompt_ids[r])
            for t, token in enumerate(rollout.action_ids[r]):
                state = (tuple(rollout.action_ids[r][:t]), token)
                if mask[r, p - 1 + t]:
                    assert state not in seen  # a (prefix, token) pair is trained in one row only
                    seen.add(state)
        every = {(tuple(rollout.action_ids[r][:t]), tok) for r in rows for t, tok in enumerate(rollout.action_ids[r])}
        assert seen == every  # ... and in some row
        # each trained token carries its segment's TreeRL advantage times the leaves under it (its copies' weight)
        tree = prefix_tree([rollout.action_ids[r] for r in rows])
        rewards = tree.rewards(rollout.rewards[n].tolist())
        weighted = treerl_advantages(tree.parents, rewards) * tree_values(tree.parents, rewards)[1]
        for g, r in enumerate(rows):
            p = len(rollout.prompt_ids[r])
            for t, node in enumerate(tree.node_of[g]):
                if mask[r, p - 1 + t]:
                    assert advantages[r, p - 1 + t].item() == pytest.approx(weighted[node].item())
    assert (advantages * (1 - mask)).abs().sum() == 0


def chains(rewards: list[float]) -> Rollout:
    """A hand-built rollout of one problem whose completions share no prefix: each is one segment under the root."""
    actions = [[3 + g, 9, 9 + g] for g in range(len(rewards))]  # distinct first tokens
    scores = torch.tensor([rewards])
    return Rollout([PROBLEMS[0]], [Completion(0, a, "", [0.0] * 3, "eos") for a in actions], [[1, 2]] * len(actions),
                   actions, scores, scores.clone(), pad_id=0)


def test_chains_without_shared_prefixes_reduce_to_grpos_advantages():
    """No branching, no shared prefix: the tree is the root and one leaf per chain. TreeRPO's sibling normalization is
    then GRPO's group normalization on every token of every chain, and TreeRL's global + local advantage is twice the
    group-mean baseline (Dr. GRPO's advantage), both exactly."""
    rewards = [1.0, 0.0, 0.0, 1.0, 1.0]
    grpo = grpo_advantages(torch.tensor([rewards]))[0]  # (G,)
    for fn, expected in ((treerpo_advantages, grpo), (treerl_advantages, 2 * (torch.tensor(rewards) - 0.6))):
        rollout = chains(rewards)
        advantages = tree_advantages(rollout, fn)  # (G, T-1): columns 1..3 score the 3 action tokens
        torch.testing.assert_close(advantages[:, 1:], expected[:, None].expand(5, 3), rtol=0, atol=1e-6)
        assert advantages[:, 0].abs().sum() == 0


def test_tree_grpo_trains_and_refuses_shaping():
    policy = LocalPolicy(tiny_model(0, TOK.vocab_size), TOK)
    cfg = GRPOConfig(steps=2, prompts_per_step=2, group_size=2, max_new_tokens=6, lr=1e-2, seed=0, log_every=1)
    pair = recipe("tree_grpo", cfg)
    before = [p.detach().clone() for p in policy.model.parameters()]
    records = []
    out = train_grpo(policy, PROBLEMS, cfg, sevens, pair.advantage_fn, pair.loss_fn, log=records.append,
                     tree_fn=pair.tree_fn)
    assert out["steps"] == 2 and records[-1]["count/samples"] == 2 * cfg.tree_shape().leaves
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.model.parameters()))
    with pytest.raises(ValueError, match="shaping"):
        train_grpo(policy, PROBLEMS, cfg, sevens, pair.advantage_fn, pair.loss_fn, shaping=object(),
                   tree_fn=pair.tree_fn)
    with pytest.raises(ValueError, match="tree_advantage"):
        GRPOConfig(tree_advantage="vine")


def test_training_tree_draws_each_segment_with_its_advantage_and_leaves():
    from dataclasses import asdict

    from searchlearn.learn.advantages import tree_values
    from searchlearn.learn.tree import prefix_tree
    from searchlearn.learn.tree_rollout import training_tree
    from searchlearn.report.build import training_tree_section

    policy = LocalPolicy(tiny_model(0, TOK.vocab_size), TOK)
    cfg = GRPOConfig(steps=1, prompts_per_step=1, group_size=2, max_new_tokens=6, seed=0, tree_points=1,
                     tree_children=2)
    rollout, _ = collect(policy, PROBLEMS, 0, cfg, sevens, tree=True)
    tree = training_tree(rollout, 0, treerl_advantages, TOK.decode)
    sample = prefix_tree(rollout.action_ids)
    rewards = sample.rewards(rollout.rewards[0].tolist())
    values, leaves = tree_values(sample.parents, rewards)
    assert len(tree.nodes) == len(sample.parents)
    assert [n.parent for n in tree.nodes[1:]] == sample.parents[1:]
    assert [n.step.score for n in tree.nodes[1:]] == pytest.approx(treerl_advantages(sample.parents, rewards)[1:].tolist())
    assert [n.visits for n in tree.nodes] == leaves.tolist() and sum(n.terminal for n in tree.nodes) == 6
    assert tree.nodes[0].value == pytest.approx(values[0].item())
    title, body = training_tree_section({"tree": asdict(tree), "prompt": PROBLEMS[0].prompt, "step": 0})
    assert title == "A training tree" and "<svg" in body and "6 completions" in body
