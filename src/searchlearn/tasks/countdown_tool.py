"""Countdown with tools: the need list of a try line (and, with `task.calculator`, the value of the finished path)
are computed by tools the model calls, not by the model.

Held-out targets fail on the arithmetic that takes the target as an operand (docs/learning.md); with
`task.checks=tool` the traces hand that arithmetic to a tool and SFT learns to call it:

    try 7: need 46 7 ? 39 53 - - - 322 | 3 25 -> 28 22 75 - no
           \\____________/\\______________/
            the model's call  the tool's answer (an observation: untrained, masked out of every loss)

    last 25+21 46 ? 46 yes
         \\_________/\\_____/
          the call   the result and the verdict (an observation), with `task.verdict=tool`

    check 25+(7*3) ? 46 ok
          \\__________/\\___/
          the call     the calculator's answer (an observation); the model compares it with the target

With `task.calculator` the check catches what the model's own arithmetic got wrong on the way (a make value, a final
move "= T" that was not): the traces teach "no" and a "back" to the try's state when the value is not the target
(countdown_traces). Measured worse at 1400 SFT steps (docs/environments.md): the model learns to say "ok".
`countdown_env(task)` is the multi-turn environment (env/tool_env.py) that answers both tools during rollouts.
"""

from __future__ import annotations

import re

from searchlearn.env import TagParser, Tool, ToolEnv, tool
from searchlearn.tasks.countdown_rules import check_answer
from searchlearn.tasks.countdown_solver import apply_op, needs

_MOVE = re.compile(r"(\d{1,6})([-+*/])(\d{1,6})", re.ASCII)


def need_tool(max_intermediate: int = 999) -> Tool:
    def need(target: int, x: int) -> str:
        """The c with c∘x = target, one per slot T-x, T+x, x-T, T/x, x/T, T*x ("-": none)."""
        if not (0 <= target <= max_intermediate and 0 <= x <= max_intermediate):
            raise ValueError(f"numbers must be in 0..{max_intermediate}")
        return " ".join("-" if v is None else str(v) for v in needs(x, target, max_intermediate))

    return tool(need)


def last_tool() -> Tool:
    def last(move: str, target: int) -> str:
        """The result of the last move a∘b ("-": not a legal move) and whether it is the target: "V yes|no"."""
        m = _MOVE.fullmatch(move)
        if m is None:
            raise ValueError(f"a move is a∘b with ∘ one of + - * /, got {move!r}")
        value = apply_op(int(m[1]), m[2], int(m[3]))
        return f"{'-' if value is None else value} {'yes' if value == target else 'no'}"

    return tool(last)


def check_tool() -> Tool:
    def check(expr: str) -> str:
        """The exact value of an arithmetic expression ("-": none)."""
        return check_answer(expr)

    return tool(check)


def countdown_env(task, max_observation_chars: int = 64) -> ToolEnv:
    """The environment of tool-check traces (a CountdownTask with checks "tool"): the `need`, `last` and `check` tools
    behind the tag protocol "need T x ?" / "last a∘b T ?" / "check EXPR ?"."""
    if task.config.checks != "tool":
        raise ValueError(f"countdown_env needs task.checks=tool, got {task.config.checks!r}")
    tools = [need_tool(task.config.max_intermediate), last_tool(), check_tool()]
    return ToolEnv(task, tools, TagParser([t.name for t in tools]), max_observation_chars)
