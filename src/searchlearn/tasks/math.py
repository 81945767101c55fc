"""Math word problems from JSONL files, in GSM8K or MATH form, graded on the final answer.

    GSM8K form  {"question": "...", "answer": "...reasoning...\\n#### 72"}
    MATH form   {"problem": "...", "solution": "... \\\\boxed{\\\\frac{1}{2}} ..."}   (or "answer": "\\\\frac{1}{2}")

Field names are detected (question/problem; answer/solution) or set in `MathConfig`. The gold answer is extracted from
the answer field as from a completion (`math_answers.extract_answer`: last `\\boxed{}`, `#### n`, "the answer is n");
a field with none of those markers is taken whole as the answer (MATH-500's bare `answer`). A line that is not a JSON
object, lacks a field or has no answer is an error naming the file and the line.

The Task contract (docs/DESIGN.md): `problems(split, n, seed)`, `verify` (extract, then `math_answers.is_equivalent`),
`steps` (split after blank lines, the usual step delimiter of math solutions), `answer_key` (the normalized answer,
for majority voting), and `traces` (the reference solution as a completion, for SFT).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from searchlearn.tasks.math_answers import (
    extract_answer,
    is_equivalent,
    normalize_answer,
)
from searchlearn.types import Problem, Verdict

__all__ = ["MathConfig", "MathDataError", "MathTask", "load_jsonl", "steps"]

QUESTION_FIELDS = ("question", "problem")
ANSWER_FIELDS = ("answer", "solution")  # "answer" first: MATH-500 rows carry both, "answer" being the bare value
ID_FIELDS = ("id", "unique_id")


class MathDataError(ValueError):
    """A malformed data file; the message starts with `file:line:`."""


@dataclass
class MathConfig:
    train: str | None = None  # JSONL file of the train split
    test: str | None = None  # JSONL file of the test split (the same file may serve both)
    question_field: str | None = None  # None: the first of "question", "problem" that a row has
    answer_field: str | None = None  # None: the first of "answer", "solution" that a row has
    id_field: str | None = None  # None: "id" or "unique_id" when present, else file:line

    def __post_init__(self) -> None:
        for name in ("question_field", "answer_field", "id_field"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value):
                raise ValueError(f"{name} must be a non-empty string or None, got {value!r}")


def _field(row: dict, chosen: str | None, candidates: tuple[str, ...], where: str, what: str) -> str:
    names = (chosen,) if chosen else candidates
    for name in names:
        if name in row:
            value = row[name]
            if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
                raise MathDataError(f"{where}: field {name!r} must be a non-empty string or number, got {value!r}")
            return str(value)
    hint = f"set {what}_field" if not chosen else "check the field name"
    raise MathDataError(f"{where}: no {what} field {' or '.join(map(repr, names))} (fields: {sorted(row)}); {hint}")


def load_jsonl(path: str | Path, config: MathConfig | None = None) -> list[Problem]:
    """Every non-blank line of a GSM8K/MATH-form JSONL file as a Problem (prompt = the question text).

    `data` holds "answer" (the gold answer as written), "key" (its normal form), "solution" (the whole answer field)
    and "source" ("file:line").
    """
    config = config or MathConfig()
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    problems = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise MathDataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise MathDataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            question = _field(row, config.question_field, QUESTION_FIELDS, where, "question")
            solution = _field(row, config.answer_field, ANSWER_FIELDS, where, "answer")
            gold = extract_answer(solution) or solution.strip()
            key = normalize_answer(gold)
            if not key:
                raise MathDataError(f"{where}: the answer field has no answer")
            ids = (config.id_field,) if config.id_field else ID_FIELDS
            pid = next((str(row[k]) for k in ids if row.get(k) not in (None, "")), f"{path.stem}:{lineno}")
            problems.append(Problem(id=pid, prompt=question.strip(),
                                    data={"answer": gold, "key": key, "solution": solution, "source": where}))
    return problems


def steps(text: str) -> list[str]:
    """Steps of a solution: pieces ending at a blank line, each keeping its delimiter ("".join(steps) == text).
    Leading blank lines join the first step."""
    parts = re.split(r"(\n[ \t]*\n\s*)", text)  # content, delimiter, content, ...
    out: list[str] = []
    carry = ""
    for i in range(0, len(parts), 2):
        piece = carry + parts[i] + (parts[i + 1] if i + 1 < len(parts) else "")
        if not parts[i].strip() and not out and i + 1 < len(parts):
            carry = piece  # only whitespace so far
            continue
        carry = ""
        if piece:
            out.append(piece)
    if carry:
        out.append(carry)
    return out


def reference_trace(problem: Problem) -> str:
    """The dataset's solution as a completion: GSM8K calculator notes `<<...>>` dropped, one step per line, and the
    answer boxed at the end."""
    solution = problem.data.get("solution", "")
    body = re.sub(r"<<[^<>]*>>", "", solution.split("####")[0]).strip()
    lines = [ln.strip() for ln in body.split("\n") if ln.strip()]
    if "\\boxed" in body:
        return "\n\n".join(lines)
    return "\n\n".join(lines + [f"The answer is $\\boxed{{{problem.data['answer']}}}$."])


class MathTask:
    """The Task contract (docs/DESIGN.md) for math word problems from JSONL files."""

    name = "math"
    words: tuple[str, ...] = ()  # no task vocabulary: math needs a real (HF) tokenizer
    step_delimiter = "\n\n"

    def __init__(self, config: MathConfig | None = None):
        self.config = config if config is not None else MathConfig()
        self._cache: dict[str, list[Problem]] = {}

    @classmethod
    def from_file(cls, path: str | Path, **fields) -> MathTask:
        """One file for every split (e.g. an evaluation set)."""
        return cls(MathConfig(train=str(path), test=str(path), **fields))

    def load(self, split: str) -> list[Problem]:
        """All problems of a split, in file order (read once)."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        path = getattr(self.config, split)
        if path is None:
            raise ValueError(f"no JSONL file for the {split} split (set task.{split})")
        if split not in self._cache:
            self._cache[split] = load_jsonl(path, self.config)
        return self._cache[split]

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]:
        """`n` problems of the split, a seeded sample; all of them, in file order, when n <= 0 or n >= their count."""
        rows = self.load(split)
        if n <= 0 or n >= len(rows):
            return list(rows)
        return random.Random(f"math-{split}-{seed}").sample(rows, n)

    def verify(self, problem: Problem, text: str) -> Verdict:
        """1.0 if the completion's final answer equals the gold answer (math_answers.is_equivalent), else 0.0."""
        try:
            answer = extract_answer(text)
            if answer is None:
                return Verdict(0.0, "no answer")
            if is_equivalent(answer, problem.data["answer"]):
                return Verdict(1.0, "correct")
            return Verdict(0.0, f"wrong answer {answer[:80]!r}")
        except Exception as e:  # noqa: BLE001 — a verifier never raises on model text
            return Verdict(0.0, f"unparseable ({type(e).__name__})")

    def answer_key(self, problem: Problem, text: str) -> str | None:
        """The normalized final answer (for majority voting), or None when the completion has none."""
        try:
            answer = extract_answer(text)
            key = normalize_answer(answer) if answer is not None else ""
        except Exception:  # noqa: BLE001
            return None
        return key or None

    def steps(self, text: str) -> list[str]:
        return steps(text)

    def traces(self, problem: Problem, style: str | None = None, n: int = 1, seed: int = 0) -> list[str]:
        """The reference solution (the only style a dataset has), `n` times."""
        return [reference_trace(problem)] * n
