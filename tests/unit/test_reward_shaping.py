"""Potential-based shaping (Ng et al. 1999): the terms telescope to γ^T Φ(end) − Φ(start)."""

import pytest

from searchlearn.reward.shaping import (
    dense_step_rewards,
    discounted_return,
    shaped_rewards,
    shaping_terms,
)
from searchlearn.types import Problem, Step, Trajectory


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.5])
def test_shaping_terms_telescope(gamma):
    phi = [0.2, 0.7, 0.1, 0.9, 0.4]
    terms = shaping_terms(phi, gamma)
    assert terms[0] == pytest.approx(gamma * 0.7 - 0.2)
    assert discounted_return(terms, gamma) == pytest.approx(gamma**4 * 0.4 - 0.2)


def test_shaped_return_moves_by_minus_phi_start_when_terminal_is_zero():
    rewards, phi, gamma = [0.0, 0.0, 1.0], [0.5, 0.6, 0.8, 0.9], 0.9
    shaped = shaped_rewards(rewards, phi, gamma)
    assert shaped == pytest.approx([0.9 * 0.6 - 0.5, 0.9 * 0.8 - 0.6, 1.0 + 0.0 - 0.8])
    assert discounted_return(shaped, gamma) == pytest.approx(discounted_return(rewards, gamma) - 0.5)
    open_ended = shaped_rewards(rewards, phi, gamma, terminal_zero=False)
    assert discounted_return(open_ended, gamma) == pytest.approx(discounted_return(rewards, gamma) + 0.9**3 * 0.9 - 0.5)
    with pytest.raises(ValueError):
        shaped_rewards([0.0], [0.1], 1.0)


class TablePotential:
    """Φ(prefix) from a table (stands in for a value model's `value`)."""

    def value(self, problems, prefixes):
        return [{"": 0.5, "a\n": 0.75, "a\nb\n": 1.0}[x] for x in prefixes]


def test_dense_step_rewards_from_a_potential():
    p = Problem("p", "q\n")
    t = Trajectory("p", "q\n", "a\nb\n", [Step("a\n"), Step("b\n")], reward=1.0)
    empty = Trajectory("p", "q\n", "", [], reward=0.0)
    assert dense_step_rewards([p, p], [t, empty], TablePotential()) == [pytest.approx([0.25, 1.0 - 0.75]), []]
