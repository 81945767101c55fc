"""Countdown's rules: the task's settings and its verifier (a whitelist tokenizer and a parser, never `eval`).

The solver, the trace writers, the gold labels and the Task all build on these; nothing here imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from searchlearn.types import Problem, Verdict

WORDS = ("answer", "check", "back", "no", "yes", "ok", "vs", "try", "need")
MAX_EXPR_CHARS = 200  # the verifier rejects longer answer expressions
MAX_DEPTH = 32  # ... deeper bracket nesting
MAX_DIGITS = 6  # ... and longer number literals


@dataclass
class CountdownConfig:
    k: int = 3  # input numbers per problem (2..5; 3 and 4 are the documented settings)
    lo: int = 1  # smallest input number
    hi: int = 20  # largest input number
    target_lo: int = 10  # smallest target
    target_hi: int = 99  # largest target
    test_fraction: float = 0.2  # share of the target values held out for the test split
    split_seed: int = 0  # seeds which target values are held out
    max_intermediate: int = 999  # largest number the solver and traces may write (a single token each)
    style: str = "search"  # trace style: "optimal" (the solution path) or "search" (a complete depth-first search)
    backtrack: bool = True  # "search" traces write the tries that fail and "back | ..." (False: the oracle's path)
    verify: bool = True  # traces write a "check <expr>=<target> ok" line before the answer
    corrections: float = 0.2  # chance that a failing try is written with a slip its moves then catch (self-correction)
    checks: str = "need"  # how a try line finds the last move: "need" (the values c with c∘x = T, then each make
    #                       value looked up among them) or "forward" (each make value c combined with x, each result
    #                       compared with T: no arithmetic takes the target as an operand; countdown_traces) or
    #                       "tool" (the need list is the answer of a tool the model calls: "need T x ?"; the
    #                       multi-turn environment of countdown_tool)
    calculator: bool = False  # with checks "tool": the check line asks a calculator tool ("check EXPR ? V ok|no")
    #                           and half the slips carry their wrong value into the moves, where the check catches it
    verdict: str = "model"  # who writes the last move's result and verdict: "model" ("9+8=17 vs 17 yes") or, with
    #                         checks "tool", "tool" (the model calls "last 9+8 17 ?", the environment answers
    #                         "17 yes"): no verdict on the target is then held as a prior (docs/learning.md, item 12)

    def __post_init__(self) -> None:
        if not 2 <= self.k <= 5:
            raise ValueError(f"k must be in 2..5, got {self.k}")
        if not 0 <= self.lo <= self.hi:
            raise ValueError(f"need 0 <= lo <= hi, got lo={self.lo} hi={self.hi}")
        if not 0 <= self.target_lo <= self.target_hi:
            raise ValueError(f"need 0 <= target_lo <= target_hi, got {self.target_lo}..{self.target_hi}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if not max(self.hi, self.target_hi) <= self.max_intermediate < 10**MAX_DIGITS:
            raise ValueError(f"max_intermediate must be in [max(hi, target_hi), {10**MAX_DIGITS - 1}], "
                             f"got {self.max_intermediate}")
        if self.style not in ("optimal", "search"):
            raise ValueError(f"style must be 'optimal' or 'search', got {self.style!r}")
        if not 0.0 <= self.corrections <= 1.0:
            raise ValueError(f"corrections must be in [0, 1], got {self.corrections}")
        if self.checks not in ("need", "forward", "tool"):
            raise ValueError(f"checks must be 'need', 'forward' or 'tool', got {self.checks!r}")
        if self.calculator and self.checks != "tool":
            raise ValueError("calculator checks are a tool: they need checks='tool'")
        if self.verdict not in ("model", "tool"):
            raise ValueError(f"verdict must be 'model' or 'tool', got {self.verdict!r}")
        if self.verdict == "tool" and self.checks != "tool":
            raise ValueError("a tool verdict is a tool call: it needs checks='tool'")


# -- verifier: a whitelist tokenizer and a recursive-descent parser, never eval ----------------------------------
class _Reject(Exception):
    """A completion that fails a check; the message is the Verdict reason."""


def _lex(text: str) -> list:
    toks: list = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == " ":
            i += 1
        elif ch in "0123456789":  # ASCII digits only (str.isdigit would take other scripts' digits)
            j = i
            while j < len(text) and text[j] in "0123456789":
                j += 1
            if j - i > MAX_DIGITS:
                raise _Reject(f"parse error: number longer than {MAX_DIGITS} digits")
            toks.append(int(text[i:j]))
            i = j
        elif ch in "+-*/()=":
            toks.append(ch)
            i += 1
        else:
            raise _Reject(f"parse error: bad character {ascii(ch)}")
    return toks


class _Parser:
    """expr := term (('+'|'-') term)* ; term := factor (('*'|'/') factor)* ; factor := NUMBER | '(' expr ')'.

    Leaves are ints, inner nodes (op, left, right) tuples."""

    def __init__(self, toks: list):
        self.toks, self.pos, self.depth = toks, 0, 0

    def peek(self):
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def expr(self):
        return self.chain(("+", "-"), self.term)

    def term(self):
        return self.chain(("*", "/"), self.factor)

    def chain(self, ops: tuple[str, str], operand):
        """operand (op operand)*, left-associative."""
        node = operand()
        while self.peek() in ops:
            op = self.toks[self.pos]
            self.pos += 1
            node = (op, node, operand())
        return node

    def factor(self):
        tok = self.peek()
        if isinstance(tok, int):
            self.pos += 1
            return tok
        if tok == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Reject(f"parse error: brackets nested deeper than {MAX_DEPTH}")
            self.pos += 1
            node = self.expr()
            if self.peek() != ")":
                raise _Reject("parse error: unbalanced brackets")
            self.pos += 1
            self.depth -= 1
            return node
        raise _Reject("parse error: unexpected end" if tok is None else f"parse error: unexpected {tok!r}")


def _leaves(node) -> list[int]:
    return [node] if isinstance(node, int) else _leaves(node[1]) + _leaves(node[2])


def _value(node) -> Fraction:
    """Exact value; every division must leave an integer quotient (so every intermediate is an integer)."""
    if isinstance(node, int):
        return Fraction(node)
    op, x, y = node[0], _value(node[1]), _value(node[2])
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if y == 0:
        raise _Reject("division by zero")
    if (x / y).denominator != 1:
        raise _Reject("inexact division")
    return x / y


def _evaluate(expr_text: str, nums) -> tuple[Fraction, int | None]:
    """(value, claimed value after '=' or None) of an answer expression that uses exactly `nums`; else _Reject."""
    text = expr_text.strip()
    if not text:
        raise _Reject("parse error: empty expression")
    if len(text) > MAX_EXPR_CHARS:
        raise _Reject(f"parse error: expression longer than {MAX_EXPR_CHARS} characters")
    parser = _Parser(_lex(text))
    tree = parser.expr()
    claim = None
    if parser.peek() == "=":
        parser.pos += 1
        claim = parser.peek()
        if not isinstance(claim, int):
            raise _Reject("parse error: expected a number after '='")
        parser.pos += 1
    if parser.pos != len(parser.toks):
        raise _Reject(f"parse error: unexpected {parser.peek()!r}")
    used, inputs = sorted(_leaves(tree)), sorted(nums)
    if used != inputs:
        raise _Reject(f"numbers used {used} != inputs {inputs}")
    return _value(tree), claim


def value_of(expr_text: str) -> int:
    """The exact value of an arithmetic expression of integers (the verifier's tokenizer and parser, never `eval`);
    ValueError with the reason when it does not parse or a division is inexact (the check tool's arithmetic)."""
    text = expr_text.strip()
    try:
        if not text or len(text) > MAX_EXPR_CHARS:
            raise _Reject(f"an expression of 1 to {MAX_EXPR_CHARS} characters")
        parser = _Parser(_lex(text))
        tree = parser.expr()
        if parser.pos != len(parser.toks):
            raise _Reject(f"parse error: unexpected {parser.peek()!r}")
        return int(_value(tree))
    except _Reject as e:
        raise ValueError(str(e)) from None


def check_answer(expr: str) -> str:
    """The check tool's answer (countdown_tool): the expression's exact value, or "-" when it has none (an inexact
    division) or does not parse."""
    try:
        return str(value_of(expr))
    except ValueError:
        return "-"


def judge(expr_text: str, nums, target: int) -> str:
    """'correct', or the reason an answer expression (with an optional '= <number>') is wrong. Never raises."""
    try:
        value, claim = _evaluate(expr_text, nums)
    except _Reject as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 — a verifier never raises on model text; the tests assert this never fires
        return f"internal error: {type(e).__name__}"
    if value != target:
        return f"value {value} != target {target}"
    if claim is not None and claim != value:
        return f"claimed {claim} != value {value}"
    return "correct"


def answer_line(text) -> str | None:
    """The expression of the last line that starts with 'answer', or None."""
    if not isinstance(text, str):
        return None
    for line in reversed(text.split("\n")):
        line = line.strip()
        if line.startswith("answer"):
            return line[len("answer"):]
    return None


def verify(problem: Problem, text: str) -> Verdict:
    """Score 1.0 if the last 'answer' line uses each input once, divides exactly and equals the target, else 0.0."""
    expr = answer_line(text)
    if expr is None:
        return Verdict(0.0, "no answer")
    reason = judge(expr, problem.data["nums"], problem.data["target"])
    return Verdict(1.0 if reason == "correct" else 0.0, reason)


def answer_key(problem: Problem, text: str) -> int | None:
    """The value of a well-formed last answer that uses exactly the inputs (for majority voting), else None."""
    expr = answer_line(text)
    if expr is None:
        return None
    try:
        value, _ = _evaluate(expr, problem.data["nums"])
    except Exception:  # noqa: BLE001 — _Reject, or anything unforeseen: not a well-formed answer
        return None
    return int(value)


def steps(text: str) -> list[str]:
    """The step lines of a completion, each keeping its '\\n' (an unterminated last piece is a step too)."""
    pieces = text.split("\n")
    return [p + "\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


# -- the Task ------------------------------------------------------------------------------------------------------
