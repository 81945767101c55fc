"""Arithmetic drills: every line is right, and no number on it is a held-out target value."""

from __future__ import annotations

import random
import re

from searchlearn.loop.initialize import ModelSize, init_examples, task_tokenizer
from searchlearn.tasks.countdown import CountdownConfig, CountdownTask, needs

LINE = re.compile(r"(\d+) (\d+) need (.*)|(\d+)([-+*/])(\d+)=(\d+)")


def test_drill_lines_are_right_and_avoid_held_out_targets():
    task = CountdownTask(CountdownConfig())
    held_out = set(task.split_targets()[1])
    rng = random.Random(0)
    lines = [line for _ in range(50) for line in task.drill(rng).splitlines()]
    assert len(lines) == 500
    kinds = set()
    for line in lines:
        m = LINE.fullmatch(line)
        assert m, line
        numbers = [int(v) for v in re.findall(r"\d+", line)]
        assert not held_out.intersection(numbers), line
        if m[1]:
            T, x = int(m[1]), int(m[2])
            assert m[3] == " ".join("-" if v is None else str(v) for v in needs(x, T)), line
            kinds.add("need")
        else:
            a, op, b, c = int(m[4]), m[5], int(m[6]), int(m[7])
            assert {"+": a + b, "-": a - b, "*": a * b, "/": a // b if a % b == 0 else None}[op] == c, line
            kinds.add(op)
    assert kinds == {"need", "+", "-", "*", "/"}


def test_init_examples_mix_in_the_drill_share():
    task = CountdownTask(CountdownConfig())
    tokenizer = task_tokenizer(task, ModelSize())
    examples = init_examples(task, tokenizer, 40, seed=0, drills=0.25)
    drills = [e for e in examples if e[0] == [tokenizer.bos_id]]  # a drill's prompt is the BOS alone
    assert len(examples) == 40 and len(drills) == 10
