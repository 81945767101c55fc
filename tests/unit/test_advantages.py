import math

import pytest
import torch

from searchlearn.learn.advantages import (
    dapo_dynamic_sampling_mask,
    dr_grpo_advantages,
    gae,
    grpo_advantages,
    overlong_penalty,
    reinforce_pp_advantages,
    reinforce_pp_baseline_advantages,
    reinforce_pp_token_advantages,
    rloo_advantages,
    terminal_token_rewards,
    tree_values,
    treerl_advantages,
    treerpo_advantages,
    vineppo_advantages,
    whiten,
)


def close(a, b, tol=1e-5):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol)


def test_grpo_and_dr_grpo_advantages_hand_computed():
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    # group 0: mean 0.25, unbiased std sqrt((0.75² + 3·0.25²)/3) = 0.5
    assert close(grpo_advantages(r, eps=0.0)[0], [1.5, -0.5, -0.5, -0.5])
    assert close(grpo_advantages(r)[1], [0.0] * 4)  # a constant group: zero advantage, no division by zero
    assert close(dr_grpo_advantages(r)[0], [0.75, -0.25, -0.25, -0.25])  # no std scaling


def test_rloo_baseline_hand_computed():
    r = torch.tensor([[3.0, 1.0, 0.0, 2.0]])
    # baseline_i = (sum − r_i)/(G−1) = [1, 5/3, 2, 4/3]
    assert close(rloo_advantages(r), [[2.0, -2 / 3, -2.0, 2 / 3]])
    assert close(rloo_advantages(r), 4 / 3 * (r - r.mean()))  # = G/(G−1)·(r − mean)
    with pytest.raises(ValueError):
        rloo_advantages(torch.ones(2, 1))


def test_reinforce_pp_normalises_over_the_global_batch():
    r = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # flat mean 0.75, unbiased std 0.5
    assert close(reinforce_pp_advantages(r), [[0.5, -1.5], [0.5, 0.5]])
    # -baseline: group means first ([0.5, −0.5], [0, 0]: mean 0, unbiased std sqrt(0.5/3)), then batch-normalised
    s = math.sqrt(0.5 / 3)
    assert close(reinforce_pp_baseline_advantages(r), [[0.5 / s, -0.5 / s], [0.0, 0.0]], tol=1e-4)


def test_gae_three_step_toy():
    # rewards [0, 0, 1], values [0.5, 0.6, 0.7], γ = 0.9, λ = 0.8; terminal after step 3 (V = 0):
    # δ = [0.9·0.6 − 0.5, 0.9·0.7 − 0.6, 1 − 0.7] = [0.04, 0.03, 0.3]
    # A2 = 0.3; A1 = 0.03 + 0.72·0.3 = 0.246; A0 = 0.04 + 0.72·0.246 = 0.21712
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.6, 0.7, 9.0]])  # the padding position's value must be ignored
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    assert close(adv, [[0.21712, 0.246, 0.3, 0.0]])
    assert close(ret, [[0.71712, 0.846, 1.0, 0.0]])


def test_gae_special_cases_and_offsets():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, 0.4, 0.8]])
    mask = torch.ones(1, 3)
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)  # Monte Carlo: A_t = G_t − V_t
    assert close(adv, [[0.8, 0.6, 0.2]]) and close(ret, [[1.0, 1.0, 1.0]])
    adv, _ = gae(rewards, values, mask, gamma=1.0, lam=0.0)  # one-step TD: δ_t
    assert close(adv, [[0.2, 0.4, 0.2]])
    # a prompt offset before the completion: the same numbers, shifted
    adv2, _ = gae(torch.tensor([[0.0, 0, 0, 1, 0]]), torch.tensor([[5.0, 0.2, 0.4, 0.8, 5.0]]),
                  torch.tensor([[0.0, 1, 1, 1, 0]]), gamma=1.0, lam=0.0)
    assert close(adv2, [[0.0, 0.2, 0.4, 0.2, 0.0]])



def test_gae_passes_over_an_environments_answer_between_turns():
    """3 call tokens, 2 answer tokens (mask 0), 3 more model tokens, outcome 1 at the last, V = 0.5, γ = λ = 1: every
    model token's advantage is 1 − 0.5 (the call is credited with what follows its answer), its return 1."""
    mask = torch.tensor([[1.0, 1, 1, 0, 0, 1, 1, 1]])
    rewards = torch.tensor([[0.0, 0, 0, 0, 0, 0, 0, 1]])
    adv, ret = gae(rewards, torch.full((1, 8), 0.5), mask, gamma=1.0, lam=1.0)
    assert adv.tolist() == [[0.5, 0.5, 0.5, 0, 0, 0.5, 0.5, 0.5]] and ret.tolist() == [[1, 1, 1, 0, 0, 1, 1, 1]]
    adv, _ = gae(rewards, torch.full((1, 8), 0.5), mask, gamma=0.5, lam=0.0)  # one-step TD across the answer
    assert adv.tolist() == [[-0.25, -0.25, -0.25, 0, 0, -0.25, -0.25, 0.5]]

def test_terminal_token_rewards_put_the_outcome_on_the_last_real_token():
    mask = torch.tensor([[0.0, 1, 1, 1, 0], [1.0, 1, 0, 0, 0]])
    kl = torch.full((2, 5), 0.5)
    out = terminal_token_rewards(torch.tensor([2.0, -1.0]), mask, kl=kl, beta=0.1)
    assert close(out, [[0.0, -0.05, -0.05, 1.95, 0.0], [-0.05, -1.05, 0.0, 0.0, 0.0]])


def test_reinforce_pp_token_advantages_are_whitened_returns():
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = reinforce_pp_token_advantages(torch.tensor([1.0, 0.0]), torch.zeros(2, 2), mask, beta=0.1)
    # returns-to-go [1, 1], [0]: mean 2/3, unbiased std sqrt(1/3)
    s = math.sqrt(1 / 3)
    assert close(adv, [[(1 / 3) / s, (1 / 3) / s], [-(2 / 3) / s, 0.0]], tol=1e-4)
    assert close(whiten(torch.tensor([1.0, 3.0, 100.0]), torch.tensor([1.0, 1.0, 0.0])),
                 [-1 / math.sqrt(2), 1 / math.sqrt(2), 98 / math.sqrt(2)], tol=1e-4)


def test_dapo_dynamic_sampling_drops_constant_reward_groups():
    r = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.25]])
    assert dapo_dynamic_sampling_mask(r).tolist() == [False, True, False, True]


def test_overlong_penalty_piecewise():
    # L_max = 10, L_cache = 4: free up to 6, linear to −1 at 10, −1 beyond
    got = overlong_penalty(torch.tensor([5, 6, 8, 10, 11]), max_length=10, buffer=4)
    assert close(got, [0.0, 0.0, -0.5, -1.0, -1.0])
    assert close(overlong_penalty(torch.tensor([8]), 10, 4, factor=0.5), [-0.25])
    with pytest.raises(ValueError):
        overlong_penalty(torch.tensor([1]), 10, 0)


def test_w_reinforce_weights_solved_samples_by_lambda_and_failed_ones_by_minus_one():
    from searchlearn.learn.advantages import w_reinforce_advantages

    r = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    expected = torch.tensor([[0.1, -1.0, 0.1], [-1.0, -1.0, -1.0]])
    torch.testing.assert_close(w_reinforce_advantages(r, positive_weight=0.1), expected)
    assert w_reinforce_advantages(torch.tensor([0.5]), positive_weight=0.2).item() == pytest.approx(0.1 - 0.5)


# A hand-built tree: root 0 -> {1, 2}; 1 -> {3, 4}; 2 -> {5}; leaves 3, 4, 5 with rewards 1, 0, 1.
TREE = [-1, 0, 0, 1, 1, 2]
LEAF_REWARDS = [None, None, None, 1.0, 0.0, 1.0]


def test_tree_values_are_leaf_means_and_counts():
    values, leaves = tree_values(TREE, LEAF_REWARDS)
    assert values.tolist() == pytest.approx([2 / 3, 0.5, 1.0, 1.0, 0.0, 1.0])
    assert leaves.tolist() == [3, 2, 1, 1, 1, 1]


def test_treerl_advantages_global_plus_local_over_sqrt_leaves():
    a = treerl_advantages(TREE, LEAF_REWARDS)
    v0 = 2 / 3  # V(root)
    expected = [0.0,
                ((0.5 - v0) + (0.5 - v0)) / 2**0.5,  # node 1: two leaves below
                (1 - v0) + (1 - v0),  # node 2
                (1 - v0) + (1 - 0.5),  # node 3 under node 1
                (0 - v0) + (0 - 0.5),  # node 4
                (1 - v0) + (1 - 1)]  # node 5: an only child adds no local advantage
    assert a.tolist() == pytest.approx(expected)


def test_treerpo_normalizes_within_sibling_groups_only():
    a = treerpo_advantages(TREE, LEAF_REWARDS, eps=0.0)
    std12 = torch.tensor([0.5, 1.0]).std().item()  # siblings 1, 2 (values 0.5, 1)
    std34 = torch.tensor([1.0, 0.0]).std().item()
    assert a.tolist() == pytest.approx([0.0, -0.25 / std12, 0.25 / std12, 0.5 / std34, -0.5 / std34, 0.0])


def test_vineppo_advantages_are_one_step_value_differences():
    # values before each of 3 steps 0.5, 0.25, 1.0; outcome 1: δ = 0.25-0.5, 1-0.25, 1+0-1
    assert vineppo_advantages(1.0, [0.5, 0.25, 1.0]) == pytest.approx([-0.25, 0.75, 0.0])


@pytest.mark.parametrize("parents,rewards", [([0, 0], [None, 1.0]), ([-1, 1], [None, 1.0]),
                                             ([-1, 0], [None, None]), ([-1], [])])
def test_bad_trees_are_refused(parents, rewards):
    with pytest.raises(ValueError):
        tree_values(parents, rewards)
