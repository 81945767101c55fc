"""Countdown's exact solver, and the arithmetic a search trace writes (the slots of a "try" line).

Solver rules (solver, traces and gold labels alike): every intermediate is a non-negative integer <= max_intermediate;
a move takes two numbers a >= b and writes a+b, a*b, a-b, or a/b when b != 0 divides a. (Leaving out b > a loses
nothing: b-a < 0 is not allowed, and an exact b/a < 1 is 0, which 0*a gives too.) `reachable` is the gold value of
a state; it is memoised on the sorted tuple of the numbers.

The last move of a solution combines one number x with a value c made from all the others, so "can x finish it?" is
a question about two short lists (`needs`, `makes`): the values c with c ∘ x = T (or x ∘ c = T), and the values the
other numbers make. A search trace writes the first, then the second one value at a time, each checked against the
first as it is written (countdown_traces.py).
"""

from __future__ import annotations

from functools import lru_cache

OPS = ("+", "-", "*", "/")
Move = tuple[int, str, int, int]  # (a, op, b, c): the step "a op b = c"


# -- exact solver ------------------------------------------------------------------------------------------------------
def apply_op(a: int, op: str, b: int) -> int | None:
    """a op b under the solver's rules (non-negative, exact), or None where the move is not allowed."""
    if op == "+":
        return a + b
    if op == "*":
        return a * b
    if op == "-":
        return a - b if a >= b else None
    if op == "/":
        return a // b if b != 0 and a % b == 0 else None
    return None


def moves(nums, max_intermediate: int = 999) -> list[Move]:
    """Every distinct move from the multiset `nums`: pairs taken as a ≥ b, in a fixed order."""
    out, seen = [], set()
    for i in range(len(nums)):
        for j in range(i + 1, len(nums)):
            a, b = max(nums[i], nums[j]), min(nums[i], nums[j])
            for op in OPS:
                c = apply_op(a, op, b)
                if c is not None and c <= max_intermediate and (a, op, b) not in seen:
                    seen.add((a, op, b))
                    out.append((a, op, b, c))
    return out


def after(nums, move: Move) -> list[int]:
    """The numbers left after `move`: the first a and the first b leave (the rest keep their order), c comes last."""
    rest = list(nums)
    a, _, b, c = move
    rest.remove(a)
    rest.remove(b)
    return rest + [c]


@lru_cache(maxsize=1 << 20)
def _values(key: tuple[int, ...], max_intermediate: int) -> frozenset[int]:
    if len(key) == 1:
        return frozenset(key)
    out: set[int] = set()
    for m in moves(key, max_intermediate):
        out |= _values(tuple(sorted(after(key, m))), max_intermediate)
    return frozenset(out)


def values(nums, max_intermediate: int = 999) -> frozenset[int]:
    """Every value an expression using all of `nums` can take under the solver's rules (memoised, sorted tuple)."""
    return _values(tuple(sorted(nums)), max_intermediate)


def reachable(nums, target: int, max_intermediate: int = 999) -> bool:
    """The gold value of a state: can `target` still be made from the multiset `nums`, using every number?"""
    return len(nums) > 0 and target in values(nums, max_intermediate)


def solve(nums, target: int, max_intermediate: int = 999) -> list[Move] | None:
    """One solution path (the first in move order), or None when the target is out of reach."""
    if not reachable(nums, target, max_intermediate):
        return None
    state, path = list(nums), []
    while len(state) > 1:
        move = next(m for m in moves(state, max_intermediate) if reachable(after(state, m), target, max_intermediate))
        path.append(move)
        state = after(state, move)
    return path


def solutions(nums, target: int, max_intermediate: int = 999, limit: int | None = None) -> list[list[Move]]:
    """All solution paths (distinct move sequences; steps on disjoint numbers in both orders), at most `limit`."""
    out: list[list[Move]] = []

    def walk(state: list[int], path: list[Move]) -> None:
        if len(state) == 1:
            out.append(path)
            return
        for m in moves(state, max_intermediate):
            if limit is not None and len(out) >= limit:
                return
            nxt = after(state, m)
            if reachable(nxt, target, max_intermediate):
                walk(nxt, path + [m])

    if reachable(nums, target, max_intermediate):
        walk(list(nums), [])
    return out


# -- the slots of a "try" line -----------------------------------------------------------------------------------------
# The final move that slot i of `needs` stands for, as (op, c_first): c ∘ x when c_first, else x ∘ c. The order puts
# the easy arithmetic first (T-x, T+x, x-T, T/x, x/T) and the hard product T*x last.
NEED_MOVES = (("+", True), ("-", True), ("-", False), ("*", True), ("/", False), ("/", True))


def final_move(c: int, x: int, slot: int) -> Move | None:
    """The move slot `slot` stands for, written the solver's way (a >= b; + and * larger first), or None if illegal."""
    op, c_first = NEED_MOVES[slot]
    a, b = (c, x) if c_first else (x, c)
    if op in "+*":
        a, b = max(a, b), min(a, b)
    if a < b:
        return None
    result = apply_op(a, op, b)
    return None if result is None else (a, op, b, result)


def needs(x: int, target: int, max_intermediate: int = 999) -> list[int | None]:
    """The c that would finish with x, one per slot of NEED_MOVES: T-x, T+x, x-T, T/x, x/T, T*x (None: no such c).

    A slot holds c exactly when its move is legal under the solver's rules and makes the target."""
    T = target
    candidates = (T - x, T + x, x - T, T // x if x else None, x // T if T else None, T * x)
    out: list[int | None] = []
    for slot, c in enumerate(candidates):
        move = final_move(c, x, slot) if c is not None and 0 <= c <= max_intermediate else None
        out.append(c if move is not None and move[3] == T else None)
    return out


def makes(rest: list[int], max_intermediate: int = 999) -> list[int | None]:
    """The values the numbers `rest` (one or two of them) make: the number itself, or a+b, a-b, a*b, a/b for
    a >= b (None: not allowed)."""
    if len(rest) == 1:
        return [rest[0]]
    if len(rest) != 2:
        raise ValueError(f"makes takes one or two numbers, got {rest}")
    a, b = max(rest), min(rest)
    out: list[int | None] = []
    for op in OPS:
        c = apply_op(a, op, b)
        out.append(c if c is not None and c <= max_intermediate else None)
    return out


def hit(make: list[int | None], need: list[int | None]) -> int | None:
    """The first slot of `make` whose value `need` holds, or None."""
    return next((slot for slot, c in enumerate(make) if c is not None and c in need), None)
