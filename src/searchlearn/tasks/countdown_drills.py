"""Arithmetic drills for Countdown's policy initialization: the arithmetic of the try lines, on numbers the problems
never take as targets.

A try line's need list is arithmetic with the target as an operand (T-x, T+x, x-T, T/x, x/T, T*x). Trained on
Countdown traces alone, the model learns it as a table per training target and gets it wrong on held-out targets
(docs/learning.md, "Why the loop barely moves the policy"). A drill is a completion of lines

    "T x need 40 54 - - - 329"      the need list of x for a "target" T (the slots of `countdown_solver.needs`)
    "47*7=329", "329/7=47", ...     one operation, as the move lines write it (no cap on the result)

whose first operand is drawn from the target range half of the time and from [target_lo, `hi`] otherwise, and
whose numbers and never equal a test-split target value: the drills carry no fact about a
held-out target, so a held-out target's need list is right only where the drilled arithmetic generalizes (the
point of the measurement in docs/learning.md).
"""

from __future__ import annotations

import random

from searchlearn.tasks.countdown_rules import CountdownConfig
from searchlearn.tasks.countdown_solver import needs


def _slots(values: list[int | None]) -> str:
    return " ".join("-" if v is None else str(v) for v in values)


def drill(config: CountdownConfig, rng: random.Random, held_out: set[int], lines: int = 10, hi: int = 999) -> str:
    """A drill completion of `lines` lines (module docstring); no number on it is in `held_out`."""
    out: list[str] = []
    while len(out) < lines:
        a = rng.randint(config.target_lo, config.target_hi) if rng.random() < 0.5 else rng.randint(config.target_lo, hi)
        b = rng.randint(config.lo, config.hi)
        kind = rng.randrange(5)
        if kind == 0:
            slots = needs(b, a, config.max_intermediate)
            line, numbers = f"{a} {b} need {_slots(slots)}", [a, b, *(v for v in slots if v is not None)]
        else:
            x, op, y, z = [(a, "+", b, a + b), (a, "-", b, a - b), (a, "*", b, a * b), (a * b, "/", b, a)][kind - 1]
            line, numbers = f"{x}{op}{y}={z}", [x, y, z]
        if min(numbers) >= 0 and not held_out.intersection(numbers):
            out.append(line + "\n")
    return "".join(out)
