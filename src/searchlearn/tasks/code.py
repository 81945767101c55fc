"""Code: write a one-line Python function from input/output examples; hidden tests, run in the sandbox, decide.

    prompt      "f([3, 1, 2]) = [6, 2, 4]\\nf([5, 0]) = [10, 0]\\nf([7]) = [14]\\n"
    completion  "run def f(x): return [v + 2 for v in x] ? f([3, 1, 2]) = [5, 3, 4] want [6, 2, 4]\\n"
                "run def f(x): return [v * 2 for v in x] ? ok\\n"

A turn that ends with "?" runs the program before it on the prompt's examples, in the code sandbox (never in this
process), and the environment writes back what the first failing example returned ("... want ..."), "error" (it
raised, looped or did not parse) or "ok". A turn without "?" ends the episode; so does a run asked for after
`max_runs` of them. The
answer is the last program written, and it is correct when it returns the right value on the visible examples and
on `hidden_tests` more inputs (one sandbox run of the program computes both, cached: a program's verdict costs no
second run).

The programs come from a small grammar (code_programs.py). The test split's programs are a seeded `held_out` share of
the grammar that the training split never uses: held-out accuracy measures compositions of maps, filters and
reductions the model has not seen together. The traces of policy initialization write the right program; with
probability `retry` they first write a near miss (one edit away, failing a visible example), read its feedback and
fix it. The near miss and every observation are untrained text (SFT learns to fix, not to err).
"""

from __future__ import annotations

import functools
import random
import re
import secrets
from dataclasses import dataclass
from typing import Sequence

from searchlearn.sandbox import SandboxConfig, SandboxPool
from searchlearn.tasks.code_programs import (
    EMPTY_UNSAFE,
    FILTERS,
    MAPS,
    REDUCTIONS,
    Program,
    all_programs,
    near_misses,
    random_input,
)
from searchlearn.types import Problem, StepResult, Verdict

WORDS = ("def", "f", "x", "return", "for", "v", "in", "if", "run", "ok", "want", "error", "sum", "len", "max", "min",
         "sorted")
SYMBOLS = ("[", "]", "%", "<")  # beyond the tokenizer's own
RUN = re.compile(r"^(?:run )?(def f\(x\): .*?) ?\??$")  # a program line: "run <program> ?" (the answer: the last)
Segment = tuple[str, bool]


@dataclass
class CodeConfig:
    examples: int = 3  # visible input/output pairs in the prompt
    hidden_tests: int = 5  # more inputs the answer must get right (never shown)
    held_out: float = 0.2  # share of the grammar's programs kept for the test split
    program_split_seed: int = 0  # which programs are held out
    retry: float = 0.5  # share of initialization traces whose first program is a near miss, run and then fixed
    max_runs: int = 4  # runs per episode; a program after the last one ends it unrun (then verified)
    max_number: int = 999  # numbers up to this are one token each
    timeout_s: float = 1.0  # wall clock per program (each forked in a sandbox run of many: sandbox/forked.py)
    workers: int = 0  # programs run at once (0: one per CPU core)

    def __post_init__(self) -> None:
        if self.examples < 1 or self.hidden_tests < 0 or self.max_runs < 1:
            raise ValueError("examples >= 1, hidden_tests >= 0 and max_runs >= 1")
        if not 0 <= self.held_out < 1 or not 0 <= self.retry <= 1:
            raise ValueError("held_out must be in [0, 1) and retry in [0, 1]")


def random_program(rng: random.Random) -> Program:
    """Operators uniform, then their constants (so that "!=" with its ten constants is no likelier than "even")."""
    reduce = rng.choice(REDUCTIONS)
    map_op = rng.choice(list(MAPS))
    filter_op = "" if reduce in EMPTY_UNSAFE else rng.choice(list(FILTERS))
    return Program(map_op, rng.choice(MAPS[map_op]), filter_op, rng.choice(FILTERS[filter_op]), reduce)


def is_held_out(program: Program, config: CodeConfig) -> bool:
    return random.Random(f"code-split-{config.program_split_seed}-{program.source()}").random() < config.held_out


def program_of(text: str) -> str | None:
    """The last program line of a completion (the answer), or None."""
    for line in reversed(text.split("\n")):
        head = line.split(" ? ", 1)[0].strip()
        m = RUN.match(head)
        if m:
            return m[1].strip()
    return None


def feedback(x: list[int], got, want) -> str:
    """The environment's line for the first failing example (the sandbox harness writes the same)."""
    return f"f({x!r}) = {got!r} want {want!r}"


def harness(code: str, visible: list, hidden: list, marker: str) -> str:
    """The sandboxed program: the model's code, then its checks on the visible and the hidden examples, each
    printed after `marker` (a fresh nonce, so that the program's own prints cannot pass for a result)."""
    return (f"{code}\n\n"
            f"def _check(tests):\n"
            f"    for a, want in tests:\n"
            f"        try:\n"
            f"            got = f(list(a))\n"
            f"        except Exception:\n"
            f"            return 'error'\n"
            f"        if got != want:\n"
            f"            return f'f({{a!r}}) = {{got!r}} want {{want!r}}'\n"
            f"    return 'ok'\n\n"
            f"print({marker!r} + _check({visible!r}))\n"
            f"print({marker!r} + _check({hidden!r}))\n")


class CodeTask:
    """The Task contract for the code task: problems, the sandboxed verifier, the step format, traces, and the
    multi-turn environment (`environment()`)."""

    name = "code"
    words = WORDS
    symbols = SYMBOLS
    step_delimiter = "\n"

    def __init__(self, config: CodeConfig | None = None):
        self.config = config if config is not None else CodeConfig()
        self._pool = SandboxPool(SandboxConfig(timeout_s=self.config.timeout_s), self.config.workers or None)
        self._runs: dict[tuple[str, str], tuple[str, str]] = {}  # (problem id, code) -> (visible, hidden) results

    @property
    def max_number(self) -> int:
        return self.config.max_number

    # -- problems ---------------------------------------------------------------------------------------------------
    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """`n` problems of `split`: a program of the split, `examples` visible and `hidden_tests` hidden inputs."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        rng = random.Random(f"code-{split}-{seed}")
        out = []
        while len(out) < n:
            program = random_program(rng)
            if is_held_out(program, self.config) != (split == "test"):
                continue
            inputs = [random_input(rng) for _ in range(self.config.examples + self.config.hidden_tests)]
            tests = [(x, program.run(x)) for x in inputs]
            visible = tests[: self.config.examples]
            prompt = "".join(f"f({x!r}) = {y!r}\n" for x, y in visible)
            out.append(Problem(id=f"code-{split}-{seed}-{len(out)}", prompt=prompt,
                               data={"program": program.source(), "visible": visible,
                                     "hidden": tests[self.config.examples:]}))
        return out

    # -- running programs -------------------------------------------------------------------------------------------
    def run_many(self, problems: Sequence[Problem], codes: Sequence[str]) -> list[tuple[str, str]]:
        """(visible result, hidden result) of each code on its problem: "ok", a "... want ..." line or "error". One
        sandbox run per distinct (problem, code), remembered."""
        todo = {(p.id, c): p for p, c in zip(problems, codes) if (p.id, c) not in self._runs}
        if todo:
            marker = f"@{secrets.token_hex(8)}@"
            jobs = [harness(code, p.data["visible"], p.data["hidden"], marker) for (_, code), p in todo.items()]
            for key, result in zip(todo, self._pool.run_batch(jobs, per_program_s=self.config.timeout_s)):
                lines = [line[len(marker):] for line in result.stdout.splitlines() if line.startswith(marker)]
                self._runs[key] = (lines[0], lines[1]) if result.ok and len(lines) == 2 else ("error", "error")
        return [self._runs[(p.id, c)] for p, c in zip(problems, codes)]

    def verify(self, problem: Problem, text: str) -> Verdict:
        return self.verify_batch([problem], [text])[0]

    def verify_batch(self, problems: Sequence[Problem], texts: Sequence[str]) -> list[Verdict]:
        codes = [program_of(t) for t in texts]
        ran = iter(self.run_many([p for p, c in zip(problems, codes) if c], [c for c in codes if c]))
        out = []
        for code in codes:
            if code is None:
                out.append(Verdict(0.0, "no program"))
                continue
            visible, hidden = next(ran)
            ok = visible == "ok" and hidden == "ok"
            out.append(Verdict(1.0, "passed") if ok else
                       Verdict(0.0, f"failed: {visible if visible != 'ok' else 'hidden tests: ' + hidden}"))
        return out

    def answer_key(self, problem: Problem, text: str) -> str | None:
        return program_of(text)

    def steps(self, text: str) -> list[str]:
        return text.splitlines(keepends=True)

    # -- traces -----------------------------------------------------------------------------------------------------
    def trace_segments(self, problem: Problem, rng: random.Random) -> list[Segment]:
        """The right program run to "ok"; with probability `retry`, after a near miss that fails a visible example,
        its feedback, and the fix. Untrained: the near miss and the observations."""
        right = parse_program(problem.data["program"])
        segments: list[Segment] = []
        if rng.random() < self.config.retry:
            misses = [m for m in near_misses(right) if _first_failure(m, problem.data["visible"])]
            if misses:
                miss = rng.choice(misses)
                segments += [(f"run {miss.source()} ?", False),
                             (" " + _first_failure(miss, problem.data["visible"]) + "\n", False)]
        return segments + [(f"run {right.source()} ?", True), (" ok\n", False)]

    def trace(self, problem: Problem, rng: random.Random) -> str:
        return "".join(text for text, _ in self.trace_segments(problem, rng))

    def environment(self):
        """A factory of the multi-turn environment that runs the model's programs (CodeEnv)."""
        return lambda: CodeEnv(self)


def _first_failure(program: Program, visible: list) -> str:
    """The feedback line of `program` on the visible examples ("" if it passes them all)."""
    for x, want in visible:
        got = program.run(list(x))
        if got != want:
            return feedback(x, got, want)
    return ""


@functools.cache
def _by_source() -> dict[str, Program]:
    return {p.source(): p for p in all_programs()}


def parse_program(source: str) -> Program:
    """The Program a `Program.source()` line was written from (the task's own programs only: a lookup, not a parse)."""
    return _by_source()[source]


class CodeEnv:
    """contracts.Environment for the code task: a turn ending in "?" runs its program on the visible examples and
    reads the result (a turn with no program before its "?" reads "error"); a turn without "?", or a run request
    after `max_runs` runs, ends the episode with the verifier's verdict on the last program.

    `batched`: episodes step turn by turn, and `prefetch` runs every program a turn's steps will need in one batch
    (env/rollout.py), instead of a sandbox run per tool call."""

    stop = ("?",)
    batched = True

    def __init__(self, task: CodeTask):
        self.task = task
        self.problem: Problem | None = None
        self.completion, self.runs = "", 0

    def reset(self, problem: Problem) -> str:
        self.problem, self.completion, self.runs = problem, "", 0
        return problem.prompt

    @staticmethod
    def prefetch(envs: Sequence[CodeEnv], actions: Sequence[str]) -> None:
        """Run the programs that `env.step(action)` will run or verify, for every pair, in one batch (cached)."""
        pairs = [(env.problem, program_of(env.completion + action)) for env, action in zip(envs, actions)]
        pairs = [(p, c) for p, c in pairs if p is not None and c is not None]
        if pairs:
            envs[0].task.run_many([p for p, _ in pairs], [c for _, c in pairs])

    def step(self, action: str) -> StepResult:
        if self.problem is None:
            raise RuntimeError("step before reset")
        self.completion += action
        if not action.rstrip().endswith("?") or self.runs >= self.task.config.max_runs:
            verdict = self.task.verify(self.problem, self.completion)
            return StepResult("", verdict.score, True, {"verdict": verdict.reason})
        self.runs += 1
        code = program_of(action)
        visible = "error" if code is None else self.task.run_many([self.problem], [code])[0][0]
        observation = " " + visible[:64] + "\n"
        self.completion += observation
        return StepResult(observation, 0.0, False, {"tool": "run", "error": visible == "error"})
