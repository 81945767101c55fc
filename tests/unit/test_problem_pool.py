import pytest

from searchlearn.learn.problem_pool import EdgePool


def test_pool_keeps_only_problems_with_pass_rate_strictly_between_0_and_1():
    pool = EdgePool(size=6, refresh=10)
    pool.observe([0, 1, 2, 3], [0.0, 0.25, 1.0, 0.5], step=0)  # 4 and 5 never seen
    assert pool.eligible(step=1) == [1, 3, 4, 5]
    pool.observe([1], [1.0], step=1)  # solved every time now: it leaves the pool
    assert pool.eligible(step=2) == [3, 4, 5]


def test_a_verdict_of_0_or_1_expires_after_refresh_steps():
    pool = EdgePool(size=3, refresh=4)
    pool.observe([0, 1, 2], [0.0, 1.0, 0.5], step=2)
    assert pool.eligible(step=5) == [2]
    assert pool.eligible(step=6) == [0, 1, 2]  # 6 − 2 = 4 steps: both verdicts are due to be tested again


def test_draws_come_from_the_edge_first_and_are_reproducible_from_the_state():
    pool = EdgePool(size=10, refresh=100)
    pool.observe(range(10), [0.0, 0.5, 1.0, 0.5, 0.0, 1.0, 0.25, 0.0, 1.0, 0.0], step=0)
    edge = {1, 3, 6}
    assert set(pool.draw(step=1, draw=0, n=3, seed=7)) == edge
    five = pool.draw(step=1, draw=0, n=5, seed=7)
    assert set(five[:3]) == edge and len(set(five)) == 5  # topped up with two others, no repeats
    copy = EdgePool(size=10, refresh=100)
    copy.load(pool.state())
    assert copy.draw(step=1, draw=0, n=5, seed=7) == five


def test_pool_settings_are_checked():
    with pytest.raises(ValueError):
        EdgePool(size=4, refresh=0)
