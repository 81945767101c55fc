"""Countdown's exact solver and the step format it drives: trace writers and gold process labels.

One step per line ("\n" is the step delimiter):
    "25-7=18 | 3 18"         a op b = c, then the numbers left: the unused ones in their order, c last
    "18*3=54 vs 46 no"       a move that leaves one number, the target restated beside it, and whether they are equal
    "back | 3 7 25"          return to a state seen earlier, restated
    "check (7*3)+25=46 ok"   the expression the path built, and its value
    "answer (7*3)+25"        the final answer: what the verifier reads

Solver rules (solver, traces and gold labels alike): every intermediate is a non-negative integer <= max_intermediate;
a move takes two numbers a >= b and writes a+b, a*b, a-b, or a/b when b != 0 divides a. (Leaving out b > a loses
nothing: b-a < 0 is not allowed, and an exact b/a < 1 is 0, which 0*a gives too.) `reachable` is the gold value of
a state; it is memoised on the sorted tuple of the numbers.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from functools import lru_cache

from searchlearn.tasks.countdown_rules import CountdownConfig, judge, steps
from searchlearn.types import Problem

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



# -- trace writers -----------------------------------------------------------------------------------------------------
def _wrap(expr: str) -> str:
    """Inputs stay bare; a number made by an earlier step is bracketed when it is an operand."""
    return expr if expr.isdigit() else f"({expr})"


class _Writer:
    """Writes one trace. A state is a list of (value, expression) pairs, in the order the lines restate them."""

    def __init__(self, problem: Problem, config: CountdownConfig, rng: random.Random):
        self.target, self.config, self.rng = problem.data["target"], config, rng
        self.lines: list[str] = []

    def play(self, state: list, move: Move) -> list:
        """Write the line of `move` and return the state after it (the first a and the first b leave)."""
        a, op, b, c = move
        rest = list(state)
        expr_a = rest.pop([v for v, _ in rest].index(a))[1]
        expr_b = rest.pop([v for v, _ in rest].index(b))[1]
        new = rest + [(c, f"{_wrap(expr_a)}{op}{_wrap(expr_b)}")]
        tail = f" | {_numbers(new)}" if len(new) > 1 else (f" vs {self.target} " + ("yes" if c == self.target else "no"))
        self.lines.append(f"{a}{op}{b}={c}{tail}\n")
        return new

    def back(self, state: list) -> None:
        self.lines.append(f"back | {_numbers(state)}\n")

    def moves(self, state: list) -> tuple[list[Move], list[Move]]:
        """(moves that keep the target reachable, moves into dead ends)."""
        nums, mi = [v for v, _ in state], self.config.max_intermediate
        good, bad = [], []
        for m in moves(nums, mi):
            (good if reachable(after(nums, m), self.target, mi) else bad).append(m)
        return good, bad

    def search(self, state: list) -> list:
        """Depth first from a state that can reach the target: maybe some wrong branches first, then a right one."""
        good, bad = self.moves(state)
        rng, backtrack = self.rng, self.config.backtrack
        if len(state) == 2:  # the last move: perhaps one wrong final try ("no"), then the "yes"
            for m in rng.sample(bad, rng.randint(0, min(1, len(bad)))) if backtrack else ():
                self.play(state, m)
            return self.play(state, rng.choice(good))
        for m in rng.sample(bad, rng.randint(0, min(self.config.max_alternatives, len(bad)))) if backtrack else ():
            self.dead_end(self.play(state, m), self.config.max_dead_end_tries)
            self.back(state)
        return self.search(self.play(state, rng.choice(good)))

    def dead_end(self, state: list, tries: int) -> None:
        """A few tries inside a branch that cannot reach the target (deeper branches get one try each)."""
        options = moves([v for v, _ in state], self.config.max_intermediate)
        if len(state) < 2 or tries < 1 or not options:
            return
        picks = self.rng.sample(options, self.rng.randint(1, min(tries, len(options))))
        for i, m in enumerate(picks):
            child = self.play(state, m)
            if len(child) > 1:
                self.dead_end(child, 1)
                if i < len(picks) - 1:
                    self.back(state)


def _numbers(state: list) -> str:
    return " ".join(str(v) for v, _ in state)


def trace(problem: Problem, config: CountdownConfig, rng: random.Random) -> str:
    """A completion (without the prompt) that solves `problem`, ending in "answer <expr>\n".

    "optimal": a uniformly random solution path. "search": depth first, choosing a random right move at each node;
    with `backtrack`, 0..max_alternatives wrong branches first at each node (each explored with up to
    max_dead_end_tries tries, then "back | <state>"), and 0..1 wrong final tries ("... no") before the "yes".
    With `verify`, a "check <expr>=<target> ok" line comes before the answer.
    """
    nums, target, mi = list(problem.data["nums"]), problem.data["target"], config.max_intermediate
    writer = _Writer(problem, config, rng)
    state = [(v, str(v)) for v in nums]
    if not reachable(nums, target, mi):
        raise ValueError(f"problem {problem.id} has no solution under max_intermediate={mi}")
    if config.style == "optimal":
        for move in rng.choice(solutions(nums, target, mi)):
            state = writer.play(state, move)
    else:
        state = writer.search(state)
    expr = state[0][1]
    if config.verify:
        writer.lines.append(f"check {expr}={target} ok\n")
    writer.lines.append(f"answer {expr}\n")
    return "".join(writer.lines)


# -- gold process labels -----------------------------------------------------------------------------------------------
_N = r"\d{1,6}"
_LIST = rf"({_N}(?: {_N})*)"
_OP_LINE = re.compile(rf"({_N}) ?([-+*/]) ?({_N}) ?= ?({_N})(?: \| {_LIST}| vs {_N} (yes|no))", re.ASCII)
_BACK_LINE = re.compile(rf"back \| {_LIST}", re.ASCII)
_CHECK_LINE = re.compile(r"check (.*) ok")
_ARITHMETIC = re.compile(rf"({_N}) ?([-+*/]) ?({_N}) ?= ?({_N})", re.ASCII)  # the "a op b = c" head of a line


def gold_step_values(problem: Problem, completion: str, max_intermediate: int = 999) -> list[float]:
    """The gold value after each step line of `completion` (a leading copy of the prompt is skipped).

    A state is the multiset of numbers left. An operation line must use numbers of the state, be exact arithmetic
    under the solver's rules, and restate the numbers left (as a multiset) or, when one number is left, say "yes"
    exactly when it is the target; then the value is 1.0 if the target is reachable from the new state, else 0.0
    (so a final "no" is 0.0 and a correct "yes" is 1.0). After a final line, the next operation line starts again
    from the two numbers it combined. "back | <numbers>" must restate the start or a state an operation line
    reached; it restores that state (and can repair a broken one). A "check"/"answer" line keeps the state and is
    worth 1.0 exactly when its expression is a correct solution (with "ok" for check). Any other line, or an
    invalid one, is worth 0.0 and breaks the state until a valid "back".
    """
    nums, target = list(problem.data["nums"]), problem.data["target"]
    text = completion[len(problem.prompt):] if completion.startswith(problem.prompt) else completion
    state: list[int] | None = nums  # None: broken by an invalid line
    parent: list[int] | None = None  # the two numbers the last final line ("yes"/"no") combined
    seen = {tuple(sorted(nums))}
    out: list[float] = []
    for step in steps(text):
        line = step.strip()
        value = 0.0
        if line.startswith("check") or line.startswith("answer"):
            m = _CHECK_LINE.fullmatch(line)
            expr = line[len("answer"):] if line.startswith("answer") else (m[1] if m else None)
            value = float(expr is not None and judge(expr, nums, target) == "correct")
        elif m := _OP_LINE.fullmatch(line):
            base = parent if state is not None and len(state) == 1 and parent is not None else state
            state, parent = _operate(m, base, target)
            if state is not None and len(state) > 1:
                seen.add(tuple(sorted(state)))
                value = float(reachable(state, target, max_intermediate))
            elif state is not None:
                value = float(state[0] == target)
        elif m := _BACK_LINE.fullmatch(line):
            restated = [int(x) for x in m[1].split()]
            state, parent = (restated if tuple(sorted(restated)) in seen else None), None
            value = float(state is not None and reachable(state, target, max_intermediate))
        else:
            state, parent = None, None
        out.append(value)
    return out


def _operate(m: re.Match, base: list[int] | None, target: int) -> tuple[list[int] | None, list[int] | None]:
    """(state, parent) after the operation line `m` on `base`; (None, None) when the line is invalid."""
    a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
    if base is None or apply_op(a, op, b) != c:
        return None, None
    rest = list(base)
    for x in (a, b):
        if x not in rest:
            return None, None
        rest.remove(x)
    new = rest + [c]
    if len(new) == 1:
        return ([c], base) if m[6] is not None and (m[6] == "yes") == (c == target) else (None, None)
    if m[5] is None:
        return None, None
    restated = [int(x) for x in m[5].split()]
    return (restated, None) if Counter(restated) == Counter(new) else (None, None)


def gold_value(problem: Problem, prefix: str, max_intermediate: int = 999) -> float:
    """The gold value of a completion prefix (whole step lines): the last of `gold_step_values`, or of the start."""
    values_ = gold_step_values(problem, prefix, max_intermediate)
    if values_:
        return values_[-1]
    return float(reachable(problem.data["nums"], problem.data["target"], max_intermediate))


def step_marks(problem: Problem, completion: str, max_intermediate: int = 999) -> list[tuple[str, str]]:
    """Each step of `completion` with a mark a reader understands, from the gold values: "good" (the target is still
    reachable, or a correct check/answer), "arithmetic error" (an operation line whose result is wrong), "wrong
    answer" (a check/answer line that is not a solution), "dead end" (any other step worth 0)."""
    text = completion[len(problem.prompt):] if completion.startswith(problem.prompt) else completion
    out = []
    for line, value in zip(steps(text), gold_step_values(problem, completion, max_intermediate)):
        m = _ARITHMETIC.match(line.strip())
        if value >= 1.0:
            mark = "good"
        elif m and apply_op(int(m[1]), m[2], int(m[3])) != int(m[4]):
            mark = "arithmetic error"
        elif line.lstrip().startswith(("check", "answer")):
            mark = "wrong answer"
        else:
            mark = "dead end"
        out.append((line, mark))
    return out


def _written_state(line: str) -> tuple[int, ...] | None:
    """The state (sorted numbers left) a line writes: "a op b=c | L" and "back | L" write L, a final line its result."""
    line = line.strip()
    if m := _OP_LINE.fullmatch(line):
        return tuple(sorted(int(x) for x in m[5].split())) if m[5] is not None else (int(m[4]),)
    if m := _BACK_LINE.fullmatch(line):
        return tuple(sorted(int(x) for x in m[1].split()))
    return None


def backs_out(problem: Problem, prefix: str, rollout: str) -> bool:
    """Whether `rollout`, continuing `prefix`, gives up the prefix's last step: it writes "back | L" to a state L the
    prefix had reached before that step (the start included) and not the one the step led to. Such a rollout is
    no evidence for the step, whatever it finds after backing out (the Monte-Carlo label of issue "reward models
    that guide": it counts as a failure of the step)."""
    lines = steps(prefix[len(problem.prompt):] if prefix.startswith(problem.prompt) else prefix)
    if not lines:
        return False
    before = {tuple(sorted(problem.data["nums"]))}
    for line in lines[:-1]:
        state = _written_state(line)
        if state is not None:
            before.add(state)
    after = _written_state(lines[-1])
    for line in steps(rollout):
        if (m := _BACK_LINE.fullmatch(line.strip())) is not None:
            state = tuple(sorted(int(x) for x in m[1].split()))
            if state in before and state != after:
                return True
    return False
