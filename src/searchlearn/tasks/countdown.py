"""Countdown: combine the k input numbers, each exactly once, with + - * / to hit a target.

    prompt      "3 7 25 -> 46\n"
    completion  "7*3=21 | 25 21\n25+21=46 vs 46 yes\ncheck 25+(7*3)=46 ok\nanswer 25+(7*3)\n"

Here: the config, the generator with held-out targets, the verifier and the Task. The exact solver and the step
format it drives (trace writers, gold process labels) are in `countdown_traces`, re-exported from here.

The verifier's rules: the last line that starts with "answer" holds an expression (numbers, + - * /, brackets,
spaces, optionally "= <number>") that uses each input exactly once; its value, computed exactly with Fractions, must
equal the target. Every division must be exact (its quotient an integer, so every intermediate is an integer);
intermediates may be negative. The solver is stricter (non-negative intermediates, see `countdown_traces`), and
whatever it writes the verifier accepts.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from fractions import Fraction

from searchlearn.tasks.countdown_traces import (  # the solver and the step format, re-exported
    OPS,
    Move,
    after,
    apply_op,
    gold_step_values,
    gold_value,
    moves,
    reachable,
    solutions,
    solve,
    trace,
    values,
)
from searchlearn.types import Problem, Verdict

__all__ = [
    "CountdownConfig", "CountdownTask", "OPS", "Move", "after", "answer_key", "apply_op", "gold_step_values",
    "gold_value", "judge", "make_prompt", "moves", "problems", "reachable", "solutions", "solve", "split_targets",
    "steps", "trace", "values", "verify",
]

WORDS = ("answer", "check", "back", "no", "yes", "ok", "vs")
MAX_EXPR_CHARS = 200  # the verifier rejects longer answer expressions
MAX_DEPTH = 32  # ... deeper bracket nesting
MAX_DIGITS = 6  # ... and longer number literals
_VERDICT = re.compile(r"(.* vs \d{1,6} ?)(yes|no)[ \n]*", re.ASCII)  # a final line: head, verdict


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
    style: str = "search"  # trace style: "optimal" (the solution path) or "search" (depth-first with reasoning)
    backtrack: bool = True  # "search" traces explore wrong branches and write "back | ..." (ignored by "optimal")
    verify: bool = True  # traces write a "check <expr>=<target> ok" line before the answer
    max_alternatives: int = 2  # most wrong branches a search trace tries at one node
    max_dead_end_tries: int = 2  # most tries a search trace makes inside a wrong branch before backing up

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
        if self.max_alternatives < 0 or self.max_dead_end_tries < 0:
            raise ValueError("max_alternatives and max_dead_end_tries must be >= 0")


# -- problems ------------------------------------------------------------------------------------------------------
def make_prompt(nums, target: int) -> str:
    return " ".join(map(str, nums)) + f" -> {target}\n"


def split_targets(config: CountdownConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(train targets, test targets): a seeded `test_fraction` of the target values is held out for testing."""
    targets = list(range(config.target_lo, config.target_hi + 1))
    n_test = round(config.test_fraction * len(targets))
    test = set(random.Random(f"countdown-split-{config.split_seed}").sample(targets, n_test))
    return tuple(t for t in targets if t not in test), tuple(sorted(test))


def problems(config: CountdownConfig, split: str, n: int, seed: int = 0) -> list[Problem]:
    """`n` solvable problems by rejection sampling: k uniform numbers in [lo, hi], a uniform target of the split."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    targets = split_targets(config)[split == "test"]
    if n > 0 and not targets:
        raise ValueError(f"the {split} split has no target values (test_fraction={config.test_fraction})")
    rng = random.Random(f"countdown-{split}-{seed}")
    out: list[Problem] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 1000 * n + 10000:
            raise RuntimeError(f"found only {len(out)} of {n} solvable problems; widen the number or target range")
        nums = [rng.randint(config.lo, config.hi) for _ in range(config.k)]
        target = rng.choice(targets)
        if reachable(nums, target, config.max_intermediate):
            out.append(Problem(id=f"cd-{split}-{seed}-{len(out)}", prompt=make_prompt(nums, target),
                               data={"nums": nums, "target": target}))
    return out


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
class CountdownTask:
    """The Task contract (DESIGN.md) for Countdown: problems, verifier, step format, traces, gold process labels."""

    name = "countdown"
    words = WORDS  # the words the traces use: each one token for TaskTokenizer
    step_delimiter = "\n"

    def __init__(self, config: CountdownConfig | None = None):
        self.config = config if config is not None else CountdownConfig()

    def prompt(self, problem: Problem) -> str:
        return make_prompt(problem.data["nums"], problem.data["target"])

    def split_targets(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return split_targets(self.config)

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        return problems(self.config, split, n, seed)

    def verify(self, problem: Problem, text: str) -> Verdict:
        return verify(problem, text)

    def answer_key(self, problem: Problem, text: str) -> int | None:
        return answer_key(problem, text)

    def steps(self, text: str) -> list[str]:
        return steps(text)

    def solve(self, problem: Problem) -> list[Move] | None:
        return solve(problem.data["nums"], problem.data["target"], self.config.max_intermediate)

    def trace(self, problem: Problem, rng: random.Random) -> str:
        """One completion in the configured style (without the prompt), ending in the answer line."""
        return trace(problem, self.config, rng)

    def traces(self, problem: Problem, style: str | None = None, n: int = 1, seed: int = 0) -> list[str]:
        """`n` seeded traces, in `style` when given (else the configured one)."""
        config = self.config if style is None else replace(self.config, style=style)
        rng = random.Random(f"{problem.id}-{seed}")
        return [trace(problem, config, rng) for _ in range(n)]

    def gold_value(self, problem: Problem, prefix: str) -> float:
        """1.0 if the target is still reachable after the completion prefix (rules in countdown_traces), else 0.0."""
        return gold_value(problem, prefix, self.config.max_intermediate)

    def gold_step_values(self, problem: Problem, completion: str) -> list[float]:
        """The gold value after each step line of `completion`."""
        return gold_step_values(problem, completion, self.config.max_intermediate)

    def self_eval_probe(self, problem: Problem, prefix: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """(probe text, positive words, negative words): how the policy's own next-token choice after `probe text`
        evaluates the last step of `prefix` (reward/selfeval.py; positive words empty = anything but the negatives).

        A final line "a op b=c vs T yes|no" is judged by the verdict the policy itself would write there: P(yes) vs
        P(no) after "... vs T ", i.e. its belief that the move hits the target; a "check"/"answer" line (which
        restates that path) by the same verdict on the last final line before it. After any other line the probe
        is the start of the next line: P(not "back"), its belief that the state is still worth going on from (an
        unterminated line is ended with "\\n" first). Traces write "back" right after a failed final line, so that
        probe is sharpest there; after a "|" line the traces always go on, so there it says little."""
        lines = steps(prefix)
        last = lines[-1] if lines else ""
        cut = len(prefix)
        for line in lines[::-1] if last.startswith(("check", "answer")) else [last]:
            m = _VERDICT.fullmatch(line)
            if m:
                return prefix[: cut - len(line)] + m[1], ("yes",), ("no",)
            cut -= len(line)
        return (prefix if prefix.endswith("\n") or not prefix else prefix + "\n"), (), ("back",)
