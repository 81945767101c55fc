"""Potential-based reward shaping (Ng, Harada & Russell 1999): dense per-step rewards that keep the optimal policy.

    r′_t = r_t + γ Φ(s_{t+1}) − Φ(s_t)

Summed with discount along any trajectory s_0 … s_T the shaping terms telescope:
    Σ_{t<T} γ^t (γ Φ(s_{t+1}) − Φ(s_t)) = γ^T Φ(s_T) − Φ(s_0),
so every trajectory's return moves by a quantity that depends only on its end points (with Φ(terminal) = 0, only on
the start), which is why the optimal policy does not change. Φ comes from a value model or a PRM (a state's value
estimate); a step is a state transition here: s_t = prompt + the first t steps.
"""

from __future__ import annotations

from collections.abc import Sequence


def shaping_terms(potentials: Sequence[float], gamma: float = 1.0) -> list[float]:
    """γ Φ(s_{t+1}) − Φ(s_t) for t = 0..T−1, from the T+1 potentials Φ(s_0) … Φ(s_T)."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    return [gamma * potentials[t + 1] - potentials[t] for t in range(len(potentials) - 1)]


def shaped_rewards(rewards: Sequence[float], potentials: Sequence[float], gamma: float = 1.0,
                   terminal_zero: bool = True) -> list[float]:
    """r′_t = r_t + γ Φ(s_{t+1}) − Φ(s_t) for the T step rewards `rewards` and T+1 `potentials`.

    `terminal_zero` sets Φ(s_T) = 0 when the trajectory ended (Ng et al.'s condition for episodic tasks: the
    shaped return then differs from the true one by −Φ(s_0) only). Pass False for a truncated trajectory."""
    if len(potentials) != len(rewards) + 1:
        raise ValueError(f"need len(potentials) = len(rewards) + 1, got {len(potentials)} and {len(rewards)}")
    phi = list(potentials)
    if terminal_zero and phi:
        phi[-1] = 0.0
    return [r + f for r, f in zip(rewards, shaping_terms(phi, gamma))]


def discounted_return(rewards: Sequence[float], gamma: float = 1.0) -> float:
    """Σ_t γ^t r_t."""
    return sum(r * gamma**t for t, r in enumerate(rewards))


def dense_step_rewards(problems, trajectories, potential, gamma: float = 1.0,
                       terminal_zero: bool = True) -> list[list[float]]:
    """Per-step shaped rewards for each trajectory: the outcome reward (`trajectory.reward`, 0 if None) at the last
    step, shaped with Φ = `potential.value(problems, prefixes)` (e.g. a `LearnedScorer` over a value model or PRM).

    Φ(s_0) is the potential of the prompt alone; a trajectory of no steps gets []."""
    out = []
    for problem, t in zip(problems, trajectories):
        texts = [s.text for s in t.steps]
        if not texts:
            out.append([])
            continue
        prefixes = ["".join(texts[:i]) for i in range(len(texts) + 1)]
        phi = potential.value([problem] * len(prefixes), prefixes)
        rewards = [0.0] * (len(texts) - 1) + [float(t.reward or 0.0)]
        out.append(shaped_rewards(rewards, phi, gamma, terminal_zero))
    return out
