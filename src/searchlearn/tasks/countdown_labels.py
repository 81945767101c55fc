"""Countdown's gold process labels: the value of each step line of a completion, marks a reader understands, and
whether a rollout backs out of a step. The step format is written by `countdown_traces`; the values come from the
exact solver (`countdown_solver`).
"""

from __future__ import annotations

import re
from collections import Counter

from searchlearn.tasks.countdown_rules import judge, steps
from searchlearn.tasks.countdown_solver import apply_op, hit, makes, needs, reachable
from searchlearn.types import Problem

# -- gold process labels -----------------------------------------------------------------------------------------------
_N = r"\d{1,6}"
_LIST = rf"({_N}(?: {_N})*)"
_OP_LINE = re.compile(rf"({_N}) ?([-+*/]) ?({_N}) ?= ?({_N})(?: \| {_LIST}| vs {_N} (yes|no))", re.ASCII)
_LAST_LINE = re.compile(rf"last ({_N}[-+*/]{_N}) ({_N}) \? ({_N}|-) (yes|no)", re.ASCII)  # the tool's final move
_BACK_LINE = re.compile(rf"back \| {_LIST}", re.ASCII)
_CHECK_LINE = re.compile(r"check (.*?)(?: \? (?:\d+|-))? (ok|no)")  # "check E=T ok", or the tool's "check E ? V ok"
_ARITHMETIC = re.compile(rf"({_N}) ?([-+*/]) ?({_N}) ?= ?({_N})", re.ASCII)  # the "a op b = c" head of a line
_SLOTS = rf"((?:{_N}|-)(?: (?:{_N}|-))*)"
_TRY_LINE = re.compile(rf"try ({_N}): need (?:{_N} {_N} \? )?{_SLOTS} \| {_LIST} -> {_SLOTS} (yes|no)",
                       re.ASCII)  # the need list written by the model, or a tool's answer to "need T x ?"
_FORWARD_TRY = re.compile(rf"try ({_N}): {_LIST} -> {_SLOTS}((?: \| {_N}(?: (?:{_N}|-))*)*) (yes|no)", re.ASCII)


def gold_step_values(problem: Problem, completion: str, max_intermediate: int = 999) -> list[float]:
    """The gold value after each step line of `completion` (a leading copy of the prompt is skipped).

    A state is the multiset of numbers left. An operation line must use numbers of the state, be exact arithmetic
    under the solver's rules, and restate the numbers left (as a multiset) or, when one number is left, say "yes"
    exactly when it is the target; then the value is 1.0 if the target is reachable from the new state, else 0.0
    (so a final "no" is 0.0 and a correct "yes" is 1.0). A "try" line keeps the state; it is worth 1.0 when its x,
    the numbers it lists, both slot lists and its verdict are right (`try_is_right`) and the target is reachable from
    the state, else 0.0. After a final line, the next operation line starts again
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
        line = _as_op_line(step.strip())
        value = 0.0
        if line.startswith("check") or line.startswith("answer"):
            m = _CHECK_LINE.fullmatch(line)
            expr = line[len("answer"):] if line.startswith("answer") else (m[1] if m and m[2] == "ok" else None)
            value = float(expr is not None and judge(expr, nums, target) == "correct")
        elif m := _TRY_LINE.fullmatch(line):
            value = float(state is not None and try_is_right(m, state, target, max_intermediate)
                          and reachable(state, target, max_intermediate))
        elif m := _FORWARD_TRY.fullmatch(line):
            value = float(state is not None and forward_try_is_right(m, state, target, max_intermediate)
                          and reachable(state, target, max_intermediate))
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


def _as_op_line(line: str) -> str:
    """A tool's final move "last a∘b T ? c yes|no" as the line the model would write, "a∘b=c vs T yes|no" (an
    illegal move, "-", stays as it is and is invalid)."""
    m = _LAST_LINE.fullmatch(line)
    return f"{m[1]}={m[3]} vs {m[2]} {m[4]}" if m and m[3] != "-" else line


def _slot_values(text: str) -> list[int | None]:
    return [None if v == "-" else int(v) for v in text.split()]


def try_is_right(m: re.Match, state: list[int], target: int, max_intermediate: int = 999) -> bool:
    """Whether the try line `m` is right on `state`: x is a number of the state, the rest are the others (as a
    multiset), its need slots are `needs`, and its make slots are `makes` up to the first one the need list holds,
    followed by "yes", or all of them followed by "no" when there is none."""
    x, rest = int(m[1]), [int(v) for v in m[3].split()]
    if Counter(rest + [x]) != Counter(state) or not _slots_right(m, target, max_intermediate):
        return False
    make = makes(rest, max_intermediate)
    slot = hit(make, needs(x, target, max_intermediate))
    return len(_slot_values(m[4])) == (len(make) if slot is None else slot + 1) and (m[5] == "yes") == (slot is not None)


def _slots_right(m: re.Match, target: int, max_intermediate: int) -> bool:
    """Whether a try line's need and make slots are the right arithmetic for its own x and numbers (the make slots:
    a prefix, as written before the verdict)."""
    x, rest = int(m[1]), [int(v) for v in m[3].split()]
    if len(rest) not in (1, 2) or _slot_values(m[2]) != needs(x, target, max_intermediate):
        return False
    written = _slot_values(m[4])
    return written == makes(rest, max_intermediate)[: len(written)]


def _forward_groups(m: re.Match) -> list[tuple[int, list[int | None]]]:
    """The (c, written results) groups of a forward try line."""
    return [(int(g.split()[0]), _slot_values(" ".join(g.split()[1:]))) for g in m[4].split(" | ")[1:]]


def _forward_expected(rest: list[int], x: int, target: int, max_intermediate: int
                      ) -> tuple[list[int | None], list[tuple[int, list[int | None]]], bool]:
    """(make slots, the groups as the traces write them, whether one says yes) for a forward try of x after rest."""
    make, groups = makes(rest, max_intermediate), []
    for m, c in enumerate(make):
        if c is None or c in make[:m]:
            continue
        finals = makes([c, x], max_intermediate)
        if target in finals:
            return make, groups + [(c, finals[: finals.index(target) + 1])], True
        groups.append((c, finals))
    return make, groups, False


def forward_try_is_right(m: re.Match, state: list[int], target: int, max_intermediate: int = 999) -> bool:
    """Whether the forward try line `m` is right on `state`: x and the rest are the state's numbers, its make slots
    are `makes(rest)`, and its groups are each make value c with `makes([c, x])`, up to the first value equal to the
    target, followed by "yes", or all of them followed by "no" when there is none (each distinct c once)."""
    x, rest = int(m[1]), [int(v) for v in m[2].split()]
    if Counter(rest + [x]) != Counter(state) or len(rest) not in (1, 2):
        return False
    make, groups, found = _forward_expected(rest, x, target, max_intermediate)
    return (_slot_values(m[3]) == make and _forward_groups(m) == groups and (m[5] == "yes") == found)


def _forward_slots_right(m: re.Match, target: int, max_intermediate: int) -> bool:
    """Whether a forward try line's arithmetic is right for its own x and numbers: its make slots, and in each group
    c is the next make value and the results a prefix of what c and x make."""
    x, rest = int(m[1]), [int(v) for v in m[2].split()]
    if len(rest) not in (1, 2) or _slot_values(m[3]) != makes(rest, max_intermediate):
        return False
    values = list(dict.fromkeys(c for c in makes(rest, max_intermediate) if c is not None))
    groups = _forward_groups(m)
    return len(groups) <= len(values) and all(
        c == want and written == makes([c, x], max_intermediate)[: len(written)]
        for (c, written), want in zip(groups, values))


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
    reachable, or a correct check/answer), "arithmetic error" (an operation line whose result is wrong, or a try line whose slots are), "wrong
    answer" (a check/answer line that is not a solution), "dead end" (any other step worth 0)."""
    text = completion[len(problem.prompt):] if completion.startswith(problem.prompt) else completion
    out = []
    for line, value in zip(steps(text), gold_step_values(problem, completion, max_intermediate)):
        m = _ARITHMETIC.match(line.strip())
        if value >= 1.0:
            mark = "good"
        elif m and apply_op(int(m[1]), m[2], int(m[3])) != int(m[4]):
            mark = "arithmetic error"
        elif (t := _TRY_LINE.fullmatch(line.strip())) and not _slots_right(t, problem.data["target"], max_intermediate):
            mark = "arithmetic error"
        elif (t := _FORWARD_TRY.fullmatch(line.strip())) and not _forward_slots_right(t, problem.data["target"],
                                                                                      max_intermediate):
            mark = "arithmetic error"
        elif line.lstrip().startswith(("check", "answer")):
            mark = "wrong answer"
        else:
            mark = "dead end"
        out.append((line, mark))
    return out


def _written_state(line: str) -> tuple[int, ...] | None:
    """The state (sorted numbers left) a line writes: "a op b=c | L" and "back | L" write L, a final line its result."""
    line = _as_op_line(line.strip())
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
