"""From many scores to one: a path's step scores to the number a search ranks it by, and many answers to one vote.

`aggregate`: last, min, prod or mean of a path's step scores (Snell et al. 2024 and Beeching et al. 2024 rank by the
last step's score; Lightman et al. 2023 by the product or minimum). Votes over answer keys: majority (self-
consistency, Wang et al. 2023), reward-weighted (Li et al. 2023), and the single highest reward.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence


def aggregate(scores: Sequence[float], how: str = "last") -> float:
    """One number for a path from its step scores: "last", "min", "prod" or "mean" (0.0 for a path of no steps)."""
    if how not in AGGREGATES:
        raise ValueError(f"unknown aggregate {how!r}; use one of {', '.join(AGGREGATES)}")
    if not scores:
        return 0.0
    return AGGREGATES[how](list(scores))


AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "last": lambda s: s[-1],
    "min": min,
    "prod": math.prod,
    "mean": lambda s: sum(s) / len(s),
}


def majority_vote(keys: Sequence[Hashable | None]) -> int | None:
    """Index of the first member of the most common non-None key (ties: the key seen first); None if all abstain."""
    counts: dict[Hashable, int] = defaultdict(int)
    first: dict[Hashable, int] = {}
    for i, key in enumerate(keys):
        if key is not None:
            counts[key] += 1
            first.setdefault(key, i)
    if not counts:
        return None
    best = max(counts, key=lambda k: (counts[k], -first[k]))
    return first[best]


def weighted_vote(keys: Sequence[Hashable | None], weights: Sequence[float]) -> int | None:
    """Index of the first member of the key with the largest summed weight."""
    totals: dict[Hashable, float] = defaultdict(float)
    first: dict[Hashable, int] = {}
    for i, (key, w) in enumerate(zip(keys, weights)):
        if key is not None:
            totals[key] += w
            first.setdefault(key, i)
    if not totals:
        return None
    best = max(totals, key=lambda k: (totals[k], -first[k]))
    return first[best]


def max_reward(weights: Sequence[float | None]) -> int | None:
    scored = [(w, -i) for i, w in enumerate(weights) if w is not None]
    return -max(scored)[1] if scored else None
