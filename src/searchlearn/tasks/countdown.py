"""Countdown: combine the k input numbers, each exactly once, with + - * / to hit a target.

    prompt      "3 7 25 -> 46\n"
    completion  "try 3: need 43 49 - - - 138 | 7 25 -> 32 18 175 - no\n"
                "try 7: need 39 53 - - - 322 | 3 25 -> 28 22 75 - no\n"
                "try 25: need 21 71 - - - - | 3 7 -> 10 4 21 yes\n"
                "7*3=21 | 25 21\n25+21=46 vs 46 yes\ncheck 25+(7*3)=46 ok\nanswer 25+(7*3)\n"

Here: the generator with held-out targets and the Task. The settings and the verifier are in `countdown_rules`, the
exact solver in `countdown_solver`, the trace writers in `countdown_traces` and the gold process labels in
`countdown_labels`; all are re-exported from here.

The verifier's rules: the last line that starts with "answer" holds an expression (numbers, + - * /, brackets,
spaces, optionally "= <number>") that uses each input exactly once; its value, computed exactly with Fractions, must
equal the target. Every division must be exact (its quotient an integer, so every intermediate is an integer);
intermediates may be negative. The solver is stricter (non-negative intermediates, see `countdown_traces`), and
whatever it writes the verifier accepts.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

from searchlearn.tasks.countdown_rules import (  # the settings and the verifier, re-exported
    MAX_DEPTH,
    MAX_DIGITS,
    MAX_EXPR_CHARS,
    WORDS,
    CountdownConfig,
    answer_key,
    answer_line,
    judge,
    steps,
    verify,
)
from searchlearn.tasks.countdown_drills import drill
from searchlearn.tasks.countdown_labels import backs_out, gold_step_values, gold_value, step_marks
from searchlearn.tasks.countdown_solver import (  # the solver, re-exported
    OPS,
    Move,
    after,
    apply_op,
    hit,
    makes,
    moves,
    needs,
    reachable,
    solutions,
    solve,
    values,
)
from searchlearn.tasks.countdown_traces import Segment, trace, trace_segments
from searchlearn.types import Problem, Verdict

__all__ = [
    "MAX_DEPTH", "MAX_DIGITS", "MAX_EXPR_CHARS", "WORDS", "answer_line",
    "CountdownConfig", "CountdownTask", "OPS", "Move", "after", "answer_key", "apply_op", "backs_out", "gold_step_values",
    "gold_value", "hit", "judge", "make_prompt", "makes", "moves", "needs", "problems", "reachable", "solutions", "solve", "split_targets",
    "step_marks", "steps", "trace", "trace_segments", "values", "verify",
]

_VERDICT = re.compile(r"(.* vs \d{1,6} ?|try .* -> .*? )(yes|no)[ \n]*", re.ASCII)  # final/try: head, verdict


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


def backtrack_prompt(problem: Problem, previous: str, verdict: Verdict | None, context_steps: int = 12) -> str:
    """A Countdown revision prompt in the trace format the policy knows: the previous attempt's exploration (its
    lines before any check/answer line, the last `context_steps` of them), then "back | <inputs>", the traces' return
    to the start. The verdict is not written: the policy's vocabulary has no words for it; with feedback, it decides
    whether the chain revises at all."""
    lines = [line for line in previous.split("\n") if line.strip() and not line.startswith(("check", "answer"))]
    kept = "".join(line + "\n" for line in lines[-context_steps:]) if context_steps else ""
    return problem.prompt + kept + "back | " + " ".join(map(str, problem.data["nums"])) + "\n"


class CountdownTask:
    """The Task contract (docs/DESIGN.md) for Countdown: problems, verifier, step format, traces, gold process labels."""

    name = "countdown"
    step_delimiter = "\n"

    def __init__(self, config: CountdownConfig | None = None):
        self.config = config if config is not None else CountdownConfig()

    @property
    def words(self) -> tuple[str, ...]:
        """The words the traces use: each one token for TaskTokenizer ("last" only for the tool's final move)."""
        return WORDS + ("last",) if self.config.verdict == "tool" else WORDS

    @property
    def max_number(self) -> int:
        """Numbers up to this are one token each (TaskTokenizer)."""
        return self.config.max_intermediate

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

    def trace_segments(self, problem: Problem, rng: random.Random) -> list[Segment]:
        """`trace` as (text, trained) segments: a self-correction's slip is untrained (countdown_traces)."""
        return trace_segments(problem, self.config, rng)

    def traces(self, problem: Problem, style: str | None = None, n: int = 1, seed: int = 0) -> list[str]:
        """`n` seeded traces, in `style` when given (else the configured one)."""
        config = self.config if style is None else replace(self.config, style=style)
        rng = random.Random(f"{problem.id}-{seed}")
        return [trace(problem, config, rng) for _ in range(n)]

    def environment(self):
        """With `checks: tool`, a factory of the multi-turn environment that answers the traces' tool calls
        (countdown_tool); None otherwise (single-turn: sample, then verify)."""
        if self.config.checks != "tool":
            return None
        from searchlearn.tasks.countdown_tool import countdown_env

        return lambda: countdown_env(self)

    def drill(self, rng: random.Random) -> str:
        """An arithmetic drill completion (countdown_drills) with no test-split target value on it."""
        return drill(self.config, rng, set(self.split_targets()[1]))

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

    def step_marks(self, problem: Problem, completion: str) -> list[tuple[str, str]]:
        """(step, mark) for each step: good, dead end, arithmetic error or wrong answer (rules in countdown_traces)."""
        return step_marks(problem, completion, self.config.max_intermediate)

    def backs_out(self, problem: Problem, prefix: str, rollout: str) -> bool:
        """Whether a rollout from `prefix` abandons its last step (`countdown_traces.backs_out`)."""
        return backs_out(problem, prefix, rollout)

    def revision_prompt(self, problem: Problem, previous: str, verdict: Verdict | None, context_steps: int = 12) -> str:
        """The prompt of a sequential revision (search/revision.py): `backtrack_prompt`."""
        return backtrack_prompt(problem, previous, verdict, context_steps)
