"""Math task: answer extraction, normalization and grading on real-world answer forms; JSONL loading and its errors."""

from __future__ import annotations

import json

import pytest

from searchlearn.policy.prompts import REASONING_PROMPT, format_problems, system_prompt
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.tasks.math import (
    MathConfig,
    MathDataError,
    MathTask,
    load_jsonl,
    reference_trace,
    steps,
)
from searchlearn.tasks.math_answers import (
    extract_answer,
    is_equivalent,
    normalize_answer,
)

EXTRACT = [  # completion text -> extracted answer
    ("so the total is \\boxed{42}.", "42"),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),  # nested braces
    ("first \\boxed{1} then \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # the last box, escaped braces inside
    ("$\\boxed{5\\text{ cm}}$", "5\\text{ cm}"),
    ("\\fbox{7}", "7"),
    ("\\boxed 9 is it", "9"),
    ("unbalanced \\boxed{3} and \\boxed{4", "3"),  # an unclosed last box falls back to the one before
    ("Natalia sold 48+24 = 72 clips.\n#### 72", "72"),
    ("#### 1,000", "1,000"),
    ("The answer is 18 dollars.", "18 dollars"),
    ("So the final answer is: $-\\dfrac{3}{4}$.", "-\\dfrac{3}{4}"),
    ("The answer is $\\boxed{12}$", "12"),
    ("no conclusion here", None),
    ("", None),
]


@pytest.mark.parametrize("text,expected", EXTRACT)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


NORMAL = [  # raw answer -> normal form
    ("1,000", "1000"), ("1,234,567.5", "2469135/2"), ("0.5", "1/2"), ("1/2", "1/2"), ("\\frac{1}{2}", "1/2"),
    ("\\dfrac{2}{4}", "1/2"), ("\\tfrac12", "1/2"), ("-\\frac{3}{4}", "-3/4"), ("\\frac{-3}{4}", "-3/4"),
    ("\u22127", "-7"), ("+5", "5"), ("-5.0", "-5"), ("25\\%", "25"), ("25%", "25"), ("90^\\circ", "90"),
    ("5\\text{ cm}", "5"), ("5 cm", "5"), ("12 apples", "12"), ("\\$12.50", "25/2"), ("$18$", "18"),
    ("x = 7", "7"), ("\\text{Monday}", "Monday"), ("\\left( 1, 2 \\right)", "(1,2)"), ("2x + 1", "2x+1"),
    ("\\sqrt2", "\\sqrt{2}"), ("\\boxed{3}", "3"), ("1,2", "1,2"),  # a pair, not a thousands separator
]


@pytest.mark.parametrize("raw,expected", NORMAL)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


GRADE = [  # (predicted, gold, correct)
    ("0.5", "\\frac{1}{2}", True), ("1000", "1,000", True), ("\\dfrac{3}{4}", "3/4", True), ("-5", "-5.0", True),
    ("25", "25\\%", True), ("5", "5\\text{ cm}", True), ("\\frac{\\sqrt 3}{2}", "\\frac{\\sqrt{3}}{2}", True),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True), ("1+x", "x+1", True), ("\\{2, 1\\}", "\\{1,2\\}", True),
    ("3", "4", False), ("-3", "3", False), ("0.333", "\\frac{1}{3}", False), ("2x", "2", False),
    ("", "4", False), ("\\frac{1}{0}", "1", False),
]


@pytest.mark.parametrize("pred,gold,correct", GRADE)
def test_is_equivalent(pred, gold, correct):
    assert is_equivalent(pred, gold) is correct


def write_jsonl(path, rows) -> str:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_gsm8k_and_math_forms(tmp_path):
    gsm = write_jsonl(tmp_path / "gsm.jsonl", [
        {"question": "Natalia sold 48 clips in April and half as many in May. How many in all?",
         "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72.\n#### 72"},
        "",  # blank lines are skipped
        {"question": "A shirt costs $1,200. What is its price?", "answer": "#### 1,200"},
    ])
    problems = load_jsonl(gsm)
    assert [p.data["answer"] for p in problems] == ["72", "1,200"] and problems[1].data["key"] == "1200"
    assert problems[0].id == "gsm:1" and problems[1].data["source"].endswith("gsm.jsonl:3")
    task = MathTask.from_file(gsm)
    assert task.verify(problems[0], "48 + 24 = 72.\n\nThe answer is \\boxed{72}.").correct
    assert task.verify(problems[1], "The answer is 1200 dollars.").correct
    assert task.verify(problems[0], "The answer is 71.").reason.startswith("wrong answer")
    assert task.verify(problems[0], "I am not sure.").reason == "no answer"
    trace = reference_trace(problems[0])
    assert "<<" not in trace and trace.endswith("\\boxed{72}$.") and task.verify(problems[0], trace).correct
    assert len(task.steps(trace)) == 3

    math = write_jsonl(tmp_path / "math.jsonl", [
        {"problem": "Compute $\\frac{2}{4}$.", "solution": "Reduce: $\\boxed{\\frac{1}{2}}$.", "unique_id": "u7"},
        {"problem": "Find x.", "solution": "Long work.", "answer": "\\dfrac{14}{3}"},  # MATH-500: a bare answer
    ])
    a, b = load_jsonl(math)
    assert a.id == "u7" and a.data["answer"] == "\\frac{1}{2}" and b.data["key"] == "14/3"
    task = MathTask.from_file(math)
    assert task.verify(a, "So it is \\boxed{0.5}").correct and task.verify(b, "#### 14/3").correct
    assert task.answer_key(a, "\\boxed{0.5}") == task.answer_key(a, "The answer is 1/2.") == "1/2"
    assert task.answer_key(a, "no idea") is None


def test_configurable_fields_and_sampling(tmp_path):
    path = write_jsonl(tmp_path / "custom.jsonl", [{"q": f"What is {i}+{i}?", "a": str(2 * i), "key": f"k{i}"}
                                                   for i in range(10)])
    task = MathTask(MathConfig(train=path, test=path, question_field="q", answer_field="a", id_field="key"))
    everything = task.problems("test", 0)
    assert [p.id for p in everything] == [f"k{i}" for i in range(10)]
    sample = task.problems("test", 4, seed=1)
    assert len(sample) == 4 and sample == task.problems("test", 4, seed=1) != task.problems("test", 4, seed=2)
    assert task.problems("train", 100) == everything
    with pytest.raises(ValueError, match="no JSONL file for the train split"):
        MathTask(MathConfig(test=path)).problems("train", 1)


@pytest.mark.parametrize("line,message", [
    ('{"question": "1+1?", "answer": "#### 2"', "not valid JSON"),
    ('["question", "answer"]', "expected a JSON object, got list"),
    ('{"prompt": "1+1?", "answer": "#### 2"}', "no question field 'question' or 'problem'"),
    ('{"question": "1+1?"}', "no answer field 'answer' or 'solution'"),
    ('{"question": "1+1?", "answer": ""}', "field 'answer' must be a non-empty"),
    ('{"question": "1+1?", "answer": "$$"}', "the answer field has no answer"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"question": "ok?", "answer": "#### 1"}, "", line])
    with pytest.raises(MathDataError, match=f"bad.jsonl:3: .*{message}"):
        load_jsonl(path)


def test_missing_data_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        load_jsonl(tmp_path / "nope.jsonl")


def test_steps_split_on_blank_lines():
    text = "First, 48/2 = 24.\n\nThen 48+24 = 72.\n \nThe answer is \\boxed{72}."
    assert steps(text) == ["First, 48/2 = 24.\n\n", "Then 48+24 = 72.\n \n", "The answer is \\boxed{72}."]
    for t in (text, "\n\nlead", "a\n\n\n\nb\n\n", "one line", ""):
        assert "".join(steps(t)) == t and all(s.strip() for s in steps(t))


@pytest.mark.parametrize("text", ["\\boxed{" * 500, "}" * 1000 + "\\boxed{}", "The answer is " + "(" * 400,
                                  "\\boxed{\\frac{1}{0}}", "#### \x00\uffff", None, "\\boxed{" + "x^" * 200 + "}"])
def test_verifier_never_raises(tmp_path, text):
    path = write_jsonl(tmp_path / "one.jsonl", [{"question": "q", "answer": "#### 3"}])
    task = MathTask.from_file(path)
    problem = task.problems("test", 1)[0]
    assert task.verify(problem, text).score == 0.0
    task.answer_key(problem, text)


def test_prompts():
    assert system_prompt("math", "none") is None
    assert "\\boxed{}" in system_prompt("math") and REASONING_PROMPT in system_prompt("math", "reasoning")
    for word in ("Decompose", "alternatives", "Verify"):
        assert word in REASONING_PROMPT
    with pytest.raises(ValueError, match="prompt style"):
        system_prompt("math", "fancy")
    from searchlearn.types import Problem

    problems = [Problem("p", "3 7 25 -> 46\n")]
    assert format_problems(problems, TaskTokenizer(), "countdown") == problems  # a task tokenizer: raw prompts
