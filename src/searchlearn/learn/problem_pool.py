"""The edge-of-competence problem pool: online RL draws the problems the policy solves sometimes, not never, not always.

A group whose G samples all pass or all fail has zero group-relative advantage and gives no gradient (DAPO, Yu et
al. 2025, §3.2); RL's gains come from problems at the edge of the policy's competence (arXiv 2512.07783). The pool
keeps each problem's last observed pass rate p̂ (its last group's share of solved samples) and draws only problems
with 0 < p̂ < 1, or never seen. A verdict of 0 or 1 expires after `refresh` steps, so that a problem comes back once
the policy may have changed on it. It costs no extra samples: the verdicts come from the rollouts themselves.

Pure data: indices and rates in, indices out. Its state is a JSON-able dict (checkpoint meta), so a resumed run
draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class EdgePool:
    size: int  # problems 0 … size−1
    refresh: int  # steps after which a verdict of 0 or 1 expires (≥ 1)
    rate: dict[int, float] = field(default_factory=dict)  # problem -> its last group's pass rate p̂
    seen: dict[int, int] = field(default_factory=dict)  # problem -> the step that p̂ comes from

    def __post_init__(self) -> None:
        if self.size < 1 or self.refresh < 1:
            raise ValueError("an edge pool needs size >= 1 and refresh >= 1")

    def observe(self, index: Sequence[int], rates: Sequence[float], step: int) -> None:
        """Record the pass rate of each drawn problem's group at `step`."""
        for i, p in zip(index, rates):
            self.rate[int(i)], self.seen[int(i)] = float(p), step

    def eligible(self, step: int) -> list[int]:
        """The problems in the pool at `step`: never seen, last seen with 0 < p̂ < 1, or with a verdict expired."""
        return [i for i in range(self.size)
                if i not in self.rate or 0.0 < self.rate[i] < 1.0 or step - self.seen[i] >= self.refresh]

    def draw(self, step: int, draw: int, n: int, seed: int) -> list[int]:
        """n problems for `step`'s `draw`-th batch: a seeded choice among the eligible ones, topped up with the others
        (a seeded choice too) when fewer than n are eligible."""
        rng = np.random.default_rng([seed, step, draw, 13])
        eligible = self.eligible(step)
        out = [int(i) for i in rng.permutation(eligible)[:n]]
        if len(out) < n:
            rest = sorted(set(range(self.size)) - set(out))
            out += [int(i) for i in rng.permutation(rest)[: n - len(out)]]
        return out

    def state(self) -> dict:
        return {"rate": {str(k): v for k, v in self.rate.items()}, "seen": {str(k): v for k, v in self.seen.items()}}

    def load(self, state: dict) -> None:
        self.rate = {int(k): float(v) for k, v in state.get("rate", {}).items()}
        self.seen = {int(k): int(v) for k, v in state.get("seen", {}).items()}
