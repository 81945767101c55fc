import pytest

from searchlearn.reward.aggregate import majority_vote, max_reward, weighted_vote
from searchlearn.search.evaluate import pass_at_k


def test_majority_vote_counts_and_breaks_ties_by_first_seen():
    assert majority_vote([3, 5, 5, None, 3, 5]) == 1  # 5 wins 3-2; its first member is index 1
    assert majority_vote([7, 8, 8, 7]) == 0  # tie: 7 seen first
    assert majority_vote([None, None]) is None


def test_weighted_vote_sums_weights_per_key():
    # key 1: 0.2 + 0.3 = 0.5; key 2: 0.9 → key 2 at index 1
    assert weighted_vote([1, 2, 1], [0.2, 0.9, 0.3]) == 1
    assert weighted_vote([1, 2, 1], [0.5, 0.9, 0.5]) == 0


def test_max_reward_skips_unscored():
    assert max_reward([None, 0.2, 0.7, 0.7]) == 2
    assert max_reward([None]) is None


@pytest.mark.parametrize(
    "n,c,k,expected",
    [(4, 1, 2, 0.5), (4, 0, 4, 0.0), (4, 4, 1, 1.0), (16, 1, 1, 1 / 16), (5, 2, 2, 1 - 3 / 10), (4, 2, 3, 1.0)],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)
