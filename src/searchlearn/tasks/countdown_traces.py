"""Countdown's trace writers: solver-driven completions whose every decision a model can compute from the text so far.

One step per line ("\\n" is the step delimiter):
    "try 4: need 13 21 - - - 68 | 9 2 -> 11 7 18 - no"
                            can 4 be the last number? The c with c∘4 = 17 or 4∘c = 17 (slots T-x, T+x, x-T, T/x,
                            x/T, T*x; "-": no such c), then what the others make (a+b, a-b, a*b, a/b for a >= b; "-":
                            not allowed), each checked against the need list as it is written: none is there
    "try 9: need 8 26 - - - 153 | 4 2 -> 6 2 8 yes"      ... 4*2 = 8 is: 8 = 17-9, so 8+9 makes 17
    "4*2=8 | 9 8"           a op b = c, then the numbers left: the unused ones in their order, c last
    "9+8=17 vs 17 yes"      a move that leaves one number, the target restated beside it, and whether they are equal
    "last 9+8 17 ? 17 yes"  the same with `verdict: tool`: the model calls the move and the target, the environment
                            answers with the result and the verdict (untrained)
    "back | 4 9 2"          return to a state seen earlier, restated
    "check 9+(4*2)=17 ok"   the expression the path built, and its value
    "answer 9+(4*2)"        the final answer: what the verifier reads

The "search" style (the default) is a complete depth-first search in an order the model can reproduce: with more
than three numbers left it plays the moves of `moves` in their fixed order (each followed by the search below it,
then "back | <state>" when that fails); with three or two left it tries each number as the last one, in the order the
numbers are written, until a try says yes; then it plays the two moves the try found. Each decision is one small
computation on the line it sits in: a make value is followed by "yes" exactly when the need list holds it. Nothing
is chosen by the solver's knowledge of which states stay solvable, and there is no cap on failures: a trace ends when
the search succeeds (the initialization drops traces longer than the model's context). The need list comes first so
that it cannot be copied from the make list (a model that does so learns a shortcut, not the subtraction).

Self-correction: with probability `corrections`, a try that should say "no" is written with one slip in its make
list, a value the need list holds, so it says "yes"; the two moves then recompute the result honestly ("... vs 17 no")
and the trace goes "back" to where it was and carries on. The slip itself is written as untrained text
(`trace_segments`), so SFT teaches the model to catch slips, not to make them.

The "optimal" style writes a uniformly random solution path with no search at all (the roadmap's ablation).
`backtrack=False` writes only the try that succeeds (and, above three numbers, only moves that stay solvable: an
oracle's choices); `verify` adds the "check" line.
"""

from __future__ import annotations

import random

from searchlearn.tasks.countdown_rules import CountdownConfig, check_answer
from searchlearn.tasks.countdown_solver import (
    OPS,
    Move,
    after,
    apply_op,
    final_move,
    hit,
    makes,
    moves,
    needs,
    reachable,
    solutions,
)
from searchlearn.types import Problem

Segment = tuple[str, bool]  # (text, trained): a trace is a list of these; SFT skips the untrained ones
State = list[tuple[int, str]]  # (value, expression) per number left, in the order the lines restate them


def _wrap(expr: str) -> str:
    """Inputs stay bare; a number made by an earlier step is bracketed when it is an operand."""
    return expr if expr.isdigit() else f"({expr})"


def _slots(values: list[int | None]) -> str:
    return " ".join("-" if v is None else str(v) for v in values)


def _numbers(state: State) -> str:
    return " ".join(str(v) for v, _ in state)


class _Writer:
    """Writes one trace as segments."""

    def __init__(self, problem: Problem, config: CountdownConfig, rng: random.Random):
        self.target, self.config, self.rng = problem.data["target"], config, rng
        self.segments: list[Segment] = []

    def write(self, text: str, trained: bool = True) -> None:
        self.segments.append((text, trained))

    def play(self, state: State, move: Move, fabricated: bool = False) -> State:
        """Write the line of `move` and return the state after it (the first a and the first b leave). `fabricated`:
        the move's c is not a∘b, and is written untrained (a slip that a tool check later catches)."""
        a, op, b, c = move
        rest = list(state)
        expr_a = rest.pop([v for v, _ in rest].index(a))[1]
        expr_b = rest.pop([v for v, _ in rest].index(b))[1]
        new = rest + [(c, f"{_wrap(expr_a)}{op}{_wrap(expr_b)}")]
        verdict = "yes" if c == self.target else "no"
        if len(new) == 1 and self.config.verdict == "tool":  # the environment computes the last move and compares
            self.write(f"last {a}{op}{b} {self.target} ?")
            self.write(f" {c} {verdict}", trained=False)
            self.write("\n")
            return new
        tail = f" | {_numbers(new)}" if len(new) > 1 else f" vs {self.target} {verdict}"
        self.write(f"{a}{op}{b}=")
        self.write(str(c), trained=not fabricated)
        self.write(f"{tail}\n")
        return new

    def check(self, expr: str) -> bool:
        """The check line of a finished path: "check EXPR=T ok"; with `calculator` the value is a calculator tool's
        answer, "check EXPR ? V ok" (V untrained: the environment writes it; "no" when V is not the target)."""
        if not self.config.calculator:
            self.write(f"check {expr}={self.target} ok\n")
            return True
        value = check_answer(expr)
        self.write(f"check {expr} ?")
        self.write(f" {value}", trained=False)
        self.write(" ok\n" if value == str(self.target) else " no\n")
        return value == str(self.target)

    def back(self, state: State) -> None:
        self.write(f"back | {_numbers(state)}\n")

    # -- the search --------------------------------------------------------------------------------------------------
    def search(self, state: State) -> State | None:
        """Depth first from `state`; the final one-number state, or None when nothing below `state` works."""
        if len(state) <= 3:
            return self.tries(state)
        nums, mi = [v for v, _ in state], self.config.max_intermediate
        for m in moves(nums, mi):
            if not self.config.backtrack and not reachable(after(nums, m), self.target, mi):
                continue  # the oracle's choice: only moves that stay solvable
            done = self.search(self.play(state, m))
            if done is not None:
                return done
            self.back(state)
        return None

    def tries(self, state: State) -> State | None:
        """Each number in turn as the last one: a "try" line, then the two moves when it says yes."""
        if self.config.checks == "forward":
            return self.forward_tries(state)
        nums, mi = [v for v, _ in state], self.config.max_intermediate
        for i, x in enumerate(nums):
            rest = nums[:i] + nums[i + 1:]
            need, make = needs(x, self.target, mi), makes(rest, mi)
            slot = hit(make, need)
            if slot is not None:
                self.try_line(x, rest, need, make[: slot + 1], "yes")
                return self.moves(state, x, rest, slot, need.index(make[slot]))
            if self.config.backtrack:
                if self.rng.random() < self.config.corrections and self.slip(state, x, rest, need, make):
                    self.back(state)
                else:
                    self.try_line(x, rest, need, make, "no")
        return None

    def try_line(self, x: int, rest: list[int], need: list, make: list, verdict: str, slip: int | None = None) -> None:
        """"try x: need N | rest -> M verdict"; slot `slip` of M is written untrained. With tool checks the need list
        is a tool's answer: "try x: need T x ? N | rest -> M verdict", N untrained (the environment writes it)."""
        if self.config.checks == "tool":
            self.write(f"try {x}: need {self.target} {x} ?")
            self.write(f" {_slots(need)}", trained=False)
            self.write(f" | {' '.join(map(str, rest))} ->")
        else:
            self.write(f"try {x}: need {_slots(need)} | {' '.join(map(str, rest))} ->")
        for slot, v in enumerate(make):
            self.write(" " + ("-" if v is None else str(v)), trained=slot != slip)
        self.write(f" {verdict}\n")

    def moves(self, state: State, x: int, rest: list[int], m: int, s: int) -> State:
        """The two moves of a try that says yes: the others make c (as make slot `m`), then c with x (as need slot
        `s`); the arithmetic is done again here, so a slip in the try line shows."""
        c = rest[0]
        if len(rest) == 2:
            a, b = max(rest), min(rest)
            c = apply_op(a, OPS[m], b)
            state = self.play(state, (a, OPS[m], b, c))
        return self.play(state, final_move(c, x, s))

    def slip(self, state: State, x: int, rest: list[int], need: list, make: list) -> bool:
        """A try that should say no, written with one wrong make value that the need list holds, so that it says
        yes; its moves then show the miss ("... vs T no"). False (nothing written) where no slip makes a legal move."""
        mi = self.config.max_intermediate
        options = [(m, s) for m, v in enumerate(make) if v is not None for s, c in enumerate(need)
                   if c is not None and c not in need[:s] and (fm := final_move(v, x, s)) is not None and fm[3] <= mi]
        if not options:
            return False
        m, s = self.rng.choice(options)
        self.try_line(x, rest, need, make[:m] + [need[s]], "yes", slip=m)
        if self.config.calculator and len(rest) == 2 and self.config.verify and self.rng.random() < 0.5:
            # the slip carried on: the others "make" need[s] (untrained), which does finish with x; the calculator's
            # check of the path's expression shows the miss, and the search backs up
            a, b = max(rest), min(rest)
            after = self.play(state, (a, OPS[m], b, need[s]), fabricated=True)
            final = self.play(after, final_move(need[s], x, s))
            self.check(final[0][1])
        else:
            self.moves(state, x, rest, m, s)
        return True


    # -- forward checks: no arithmetic with the target as an operand --------------------------------------------------
    def forward_tries(self, state: State) -> State | None:
        """`tries` with forward checks: for each number x in turn, the values c the others make, then for each distinct
        c the values c and x make (the same four operations), each compared with the target as it is written; "yes"
        at the first one equal to it, then the two moves."""
        nums, mi = [v for v, _ in state], self.config.max_intermediate
        for i, x in enumerate(nums):
            rest = nums[:i] + nums[i + 1:]
            make = makes(rest, mi)
            groups = [(m, c, makes([c, x], mi)) for m, c in enumerate(make) if c is not None and c not in make[:m]]
            found = next(((m, f) for m, _, finals in groups for f, v in enumerate(finals) if v == self.target), None)
            if found is not None:
                self.forward_line(x, rest, make, groups, found, "yes")
                return self.forward_moves(state, rest, found[0], x, found[1])
            if self.config.backtrack:
                if self.rng.random() < self.config.corrections and self.forward_slip(state, x, rest, make, groups):
                    self.back(state)
                else:
                    self.forward_line(x, rest, make, groups, None, "no")
        return None

    def forward_line(self, x: int, rest: list[int], make: list, groups: list, stop: tuple[int, int] | None,
                     verdict: str, slip: bool = False) -> None:
        """"try x: rest -> M | c F | c F … verdict": the groups up to make slot stop[0], the last one up to its final
        slot stop[1] (all of them when stop is None); with `slip`, that last value is written untrained."""
        self.write(f"try {x}: {' '.join(map(str, rest))} -> {_slots(make)}")
        for m, c, finals in groups:
            self.write(f" | {c}")
            for f, v in enumerate(finals):
                last = stop is not None and (m, f) == stop
                self.write(" " + ("-" if v is None else str(v) if not (last and slip) else str(self.target)),
                           trained=not (last and slip))
                if last:
                    break
            if stop is not None and m == stop[0]:
                break
        self.write(f" {verdict}\n")

    def forward_moves(self, state: State, rest: list[int], m: int, x: int, f: int) -> State:
        """The two moves of a forward try that says yes: the others make c by operation OPS[m], then c with x by
        OPS[f] (larger number first); the arithmetic is done again here, so a slip in the try line shows."""
        c = rest[0]
        if len(rest) == 2:
            a, b = max(rest), min(rest)
            c = apply_op(a, OPS[m], b)
            state = self.play(state, (a, OPS[m], b, c))
        a, b = max(c, x), min(c, x)
        return self.play(state, (a, OPS[f], b, apply_op(a, OPS[f], b)))

    def forward_slip(self, state: State, x: int, rest: list[int], make: list, groups: list) -> bool:
        """A forward try that should say no, written with one final value replaced by the target, so that it says
        yes; its moves then show the miss. False (nothing written) where no final value is a legal move."""
        options = [(m, f) for m, _, finals in groups for f, v in enumerate(finals) if v is not None]
        if not options:
            return False
        m, f = self.rng.choice(options)
        self.forward_line(x, rest, make, groups, (m, f), "yes", slip=True)
        self.forward_moves(state, rest, m, x, f)
        return True


def trace_segments(problem: Problem, config: CountdownConfig, rng: random.Random) -> list[Segment]:
    """A completion (without the prompt) that solves `problem`, as (text, trained) segments; ends "answer <expr>\\n".

    "search": the complete depth-first search of the module docstring; "optimal": a uniformly random solution path.
    With `verify`, a "check <expr>=<target> ok" line comes before the answer."""
    nums, target, mi = list(problem.data["nums"]), problem.data["target"], config.max_intermediate
    if not reachable(nums, target, mi):
        raise ValueError(f"problem {problem.id} has no solution under max_intermediate={mi}")
    writer = _Writer(problem, config, rng)
    state: State = [(v, str(v)) for v in nums]
    if config.style == "optimal":
        for move in rng.choice(solutions(nums, target, mi)):
            state = writer.play(state, move)
    else:
        state = writer.search(state)
    expr = state[0][1]
    if config.verify:
        writer.check(expr)
    writer.write(f"answer {expr}\n")
    return writer.segments


def trace(problem: Problem, config: CountdownConfig, rng: random.Random) -> str:
    """`trace_segments` as one string."""
    return "".join(text for text, _ in trace_segments(problem, config, rng))
