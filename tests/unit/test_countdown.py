"""Countdown: verifier on adversarial strings, solver vs brute force, generation, traces, gold process labels."""

from __future__ import annotations

import random
from fractions import Fraction
from functools import lru_cache
from itertools import product

import pytest

from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.tasks.countdown import (
    CountdownConfig,
    CountdownTask,
    answer_key,
    apply_op,
    gold_step_values,
    gold_value,
    make_prompt,
    makes,
    moves,
    needs,
    reachable,
    solutions,
    solve,
    steps,
    trace,
    values,
    verify,
)
from searchlearn.types import Problem


def problem(nums, target) -> Problem:
    return Problem(id="t", prompt=make_prompt(nums, target), data={"nums": list(nums), "target": target})


P = problem([3, 7, 25], 46)


# -- verifier ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "p, text, score, reason",
    [
        (P, "answer (7*3)+25\n", 1.0, "correct"),
        (P, "7*3=21 | 25 21\n25+21=46 vs 46 yes\nanswer 25+(7*3)", 1.0, "correct"),
        (P, "answer (7*3)+25 = 46\n", 1.0, "correct"),
        (P, "answer 7*3+25=46", 1.0, "correct"),
        (P, "  answer   ( 7 * 3 ) + 25  \n", 1.0, "correct"),
        (P, "answer (7*3)+25 = 45\n", 0.0, "claimed 45 != value 46"),
        (P, "answer 25+7+7+7\n", 0.0, "numbers used [7, 7, 7, 25] != inputs [3, 7, 25]"),
        (P, "answer 25+21\n", 0.0, "numbers used [21, 25] != inputs [3, 7, 25]"),
        (P, "answer 25+7\n", 0.0, "numbers used [7, 25] != inputs [3, 7, 25]"),
        (P, "answer 25+7+3\n", 0.0, "value 35 != target 46"),
        (P, "answer 25-7*3\n", 0.0, "value 4 != target 46"),  # precedence: 25-(7*3)
        (problem([3, 3, 7], 10), "answer 7/(3-3)\n", 0.0, "division by zero"),
        (problem([7, 3, 3], 7), "answer (7/3)*3\n", 0.0, "inexact division"),  # = 7 exactly, but 7/3 is not whole
        (problem([3, 7, 25], 29), "answer 25-(3-7)\n", 1.0, "correct"),  # negative intermediates are fine
        (P, "answer 9999999999*3+7+25\n", 0.0, "parse error: number longer than 6 digits"),
        (P, "answer __import__('os').system('ls')\n", 0.0, "parse error: bad character '_'"),
        (P, "answer ((7*3)+25\n", 0.0, "parse error: unbalanced brackets"),
        (P, "answer (7*3))+25\n", 0.0, "parse error: unexpected ')'"),
        (P, "answer -3+7+25\n", 0.0, "parse error: unexpected '-'"),
        (P, "answer 7*3+\n", 0.0, "parse error: unexpected end"),
        (P, "answer 7*3+25=\n", 0.0, "parse error: expected a number after '='"),
        (P, "answer (7×3)+25\n", 0.0, "parse error: bad character '\\xd7'"),
        (P, "answer \u0663+7+25\n", 0.0, "parse error: bad character '\\u0663'"),  # Arabic-Indic 3: not a digit here
        (P, "answer\n", 0.0, "parse error: empty expression"),
        (P, "", 0.0, "no answer"),
        (P, "7*3=21 | 25 21\n25+21=46 vs 46 yes\n", 0.0, "no answer"),
        (P, "answer 1+2\nanswer (7*3)+25\n", 1.0, "correct"),  # the last answer line counts
        (P, "answer (7*3)+25\nanswer 1+2\n", 0.0, "numbers used [1, 2] != inputs [3, 7, 25]"),
        (P, "answer " + "(" * 40 + "7*3" + ")" * 40 + "+25", 0.0, "parse error: brackets nested deeper than 32"),
        (P, "answer " + "(" * 32 + "7*3" + ")" * 32 + "+25", 1.0, "correct"),
        (P, "answer " + "1+" * 150 + "1", 0.0, "parse error: expression longer than 200 characters"),
        (P, "x" * 10_000 + "\nanswer (7*3)+25\n", 1.0, "correct"),
        (P, "answer (7*3)+25" + " junk" * 2000, 0.0, "parse error: expression longer than 200 characters"),
        (P, None, 0.0, "no answer"),
    ],
)
def test_verify_adversarial(p, text, score, reason):
    assert verify(p, text) == (v := verify(p, text))  # deterministic
    assert (v.score, v.reason) == (score, reason)


def test_answer_key():
    assert answer_key(P, "answer (7*3)+25") == 46
    assert answer_key(P, "answer 25+7+3\n") == 35  # wrong but well formed: still a vote
    assert answer_key(P, "answer 25-(3*7) = 4") == 4
    assert answer_key(P, "answer 25+7+7") is None  # wrong numbers
    assert answer_key(problem([7, 3, 3], 7), "answer (7/3)*3") is None  # inexact division
    assert answer_key(P, "no answer here") is None
    assert answer_key(P, "answer (((") is None


def test_verifier_fuzz_never_raises():
    rng = random.Random(0)
    alphabet = list("0123456789+-*/() =answerckbo|\n") + ["answer ", "\u0663", "×", "\x00", "9" * 7, "(" * 40]
    nums_choices = [[3, 7, 25], [1, 1], [0, 5, 5, 9]]
    for i in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        if i % 2:
            text = "answer " + text
        p = problem(nums_choices[i % 3], 10)
        v = verify(p, text)
        assert v.score in (0.0, 1.0) and not v.reason.startswith("internal error"), (text, v)
        key = answer_key(p, text)
        assert key is None or isinstance(key, int)
        assert all(x in (0.0, 1.0) for x in gold_step_values(p, text))


# -- solver --------------------------------------------------------------------------------------------------------
def brute_values(nums, max_intermediate) -> set[int]:
    """Values of all expression trees over all of `nums` (both operand orders), with Fractions, keeping only trees
    whose every subtree value is a non-negative integer <= max_intermediate and with no division by zero."""
    n = len(nums)

    @lru_cache(maxsize=None)
    def vals(mask: int) -> frozenset:
        idx = [i for i in range(n) if mask >> i & 1]
        if len(idx) == 1:
            return frozenset({Fraction(nums[idx[0]])})
        out = set()
        left = (mask - 1) & mask
        while left:  # every proper non-empty subset as the left operand
            for x, y in product(vals(left), vals(mask ^ left)):
                for r in (x + y, x - y, x * y, x / y if y != 0 else None):
                    if r is not None and r >= 0 and r.denominator == 1 and r <= max_intermediate:
                        out.add(r)
            left = (left - 1) & mask
        return frozenset(out)

    return {int(v) for v in vals((1 << n) - 1)}


def replay(nums, path, target) -> bool:
    """Does `path` use the numbers it has, compute correctly, and end on the target alone?"""
    state = list(nums)
    for a, op, b, c in path:
        assert {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b and a % b == 0 else None}[op] == c
        state.remove(a)
        state.remove(b)
        state.append(c)
    return state == [target]


def test_solver_matches_brute_force():
    rng = random.Random(1)
    for _ in range(100):
        k = rng.randint(2, 4)
        lo, hi = rng.choice([(0, 6), (1, 12), (1, 20)])
        mi = rng.choice([30, 100, 999])
        nums = [rng.randint(lo, hi) for _ in range(k)]
        brute = brute_values(nums, mi)
        assert set(values(nums, mi)) == brute, nums
        for target in [rng.randint(0, 120) for _ in range(5)] + sorted(brute)[:3]:
            ok = reachable(nums, target, mi)
            assert ok == (target in brute)
            path = solve(nums, target, mi)
            assert (path is not None) == ok and (path is None or replay(nums, path, target))
            sols = solutions(nums, target, mi)
            assert bool(sols) == ok
            assert all(replay(nums, s, target) for s in sols)
            assert len({tuple(s) for s in sols}) == len(sols)


def test_solver_hand_cases():
    assert solutions([1, 2], 3) == [[(2, "+", 1, 3)]]
    assert solutions([2, 2], 4) == [[(2, "+", 2, 4)], [(2, "*", 2, 4)]]
    assert solutions([2, 2], 5) == [] and solve([2, 2], 5) is None
    assert moves([6, 3]) == [(6, "+", 3, 9), (6, "-", 3, 3), (6, "*", 3, 18), (6, "/", 3, 2)]
    assert moves([4, 0]) == [(4, "+", 0, 4), (4, "-", 0, 4), (4, "*", 0, 0)]  # no division by zero
    assert moves([30, 40], max_intermediate=100) == [(40, "+", 30, 70), (40, "-", 30, 10)]
    assert reachable([3, 7, 25], 46) and not reachable([3, 18], 46) and reachable([46], 46)
    assert not reachable([3, 7, 25], 1000)  # above max_intermediate
    assert replay([3, 7, 25], solve([3, 7, 25], 46), 46)


# -- generation ----------------------------------------------------------------------------------------------------
def test_split_and_generation():
    task = CountdownTask(CountdownConfig())
    train, test = task.split_targets()
    assert not set(train) & set(test) and set(train) | set(test) == set(range(10, 100))
    assert len(test) == 18  # round(0.2 * 90)
    assert task.split_targets() == (train, test)
    assert CountdownTask(CountdownConfig(split_seed=1)).split_targets() != (train, test)
    for split, allowed in (("train", set(train)), ("test", set(test))):
        ps = task.problems(split, 50, seed=3)
        assert [p.id for p in ps[:2]] == [f"cd-{split}-3-0", f"cd-{split}-3-1"]
        for p in ps:
            nums, target = p.data["nums"], p.data["target"]
            assert len(nums) == 3 and all(1 <= x <= 20 for x in nums) and target in allowed
            assert p.prompt == " ".join(map(str, nums)) + f" -> {target}\n" == task.prompt(p)
            assert reachable(nums, target)
        assert [p.prompt for p in task.problems(split, 50, seed=3)] == [p.prompt for p in ps]
        assert [p.prompt for p in task.problems(split, 50, seed=4)] != [p.prompt for p in ps]
    assert make_prompt([3, 7, 25], 46) == "3 7 25 -> 46\n"
    ps4 = CountdownTask(CountdownConfig(k=4)).problems("train", 20, seed=0)
    assert all(len(p.data["nums"]) == 4 and reachable(p.data["nums"], p.data["target"]) for p in ps4)


@pytest.mark.parametrize("bad", [{"k": 6}, {"k": 1}, {"lo": 5, "hi": 2}, {"test_fraction": 1.0},
                                 {"style": "greedy"}, {"max_intermediate": 50}, {"corrections": 1.5}])
def test_config_checks(bad):
    with pytest.raises(ValueError):
        CountdownConfig(**bad)


# -- traces --------------------------------------------------------------------------------------------------------
SEARCH_3_7_25 = ("try 3: need 43 49 - - - 138 | 7 25 -> 32 18 175 - no\n"  # 46∓3, 46*3; 7,25 make 32 18 175
                 "try 7: need 39 53 - - - 322 | 3 25 -> 28 22 75 - no\n"
                 "try 25: need 21 71 - - - - | 3 7 -> 10 4 21 yes\n"  # 46*25 > 999; 3*7 = 21 = 46-25
                 "7*3=21 | 25 21\n25+21=46 vs 46 yes\n")


def test_trace_hand_computed():
    p = problem([2, 3], 6)  # one solution: 3*2
    cfg = CountdownConfig(k=2, style="optimal", verify=True)
    assert trace(p, cfg, random.Random(0)) == "3*2=6 vs 6 yes\ncheck 3*2=6 ok\nanswer 3*2\n"
    cfg = CountdownConfig(k=2, style="search", backtrack=False, verify=False)
    # x = 2: needs 6-2, 6+2, no 2-6, 6/2 = 3, no 2/6, 6*2; the other number makes just itself: 3, in the need list
    assert trace(p, cfg, random.Random(0)) == "try 2: need 4 8 - 3 - 12 | 3 -> 3 yes\n3*2=6 vs 6 yes\nanswer 3*2\n"
    p = problem([3, 7, 25], 46)  # one solution path: 7*3=21, then 25+21
    cfg = CountdownConfig(style="optimal")
    assert trace(p, cfg, random.Random(0)) == "7*3=21 | 25 21\n25+21=46 vs 46 yes\ncheck 25+(7*3)=46 ok\nanswer 25+(7*3)\n"
    cfg = CountdownConfig(style="search", corrections=0.0)
    assert trace(p, cfg, random.Random(0)) == SEARCH_3_7_25 + "check 25+(7*3)=46 ok\nanswer 25+(7*3)\n"
    cfg = CountdownConfig(style="search", backtrack=False, verify=False)  # only the try that works
    assert trace(p, cfg, random.Random(0)) == "".join(SEARCH_3_7_25.splitlines(True)[2:]) + "answer 25+(7*3)\n"
    p = problem([20, 4, 2], 10)  # x = 20 > T: no 10-20, 30-20, 20-10 (slot x-T), no 0*20, 20/2, 200/20
    text = trace(p, CountdownConfig(style="search", corrections=0.0, verify=False), random.Random(0))
    assert text == ("try 20: need - 30 10 - 2 200 | 4 2 -> 6 2 yes\n"  # 4-2 = 2 is in the need list, as x/c
                    "4-2=2 | 20 2\n20/2=10 vs 10 yes\nanswer 20/(4-2)\n")


def next_line(p: Problem, lines: list[str]) -> str:
    """The line a reader computes from the problem and the lines so far alone, for a search trace on three numbers:
    the arithmetic of the visible numbers, never the solver's knowledge of what stays solvable."""
    nums, T = p.data["nums"], p.data["target"]
    last = lines[-1] if lines else ""
    if last.startswith("try") and last.endswith(" yes\n"):  # the first move: the two others make c
        x, m = int(last.split()[1][:-1]), len(last.split("-> ")[1].split()) - 2  # the make slot that said yes
        rest = list(nums)
        rest.remove(x)
        a, b = max(rest), min(rest)
        return f"{a}{'+-*/'[m]}{b}={apply_op(a, '+-*/'[m], b)} | {x} {apply_op(a, '+-*/'[m], b)}\n"
    if " | " in last and not last.startswith(("back", "try")):  # the final move: c with x as the need slot says
        try_line = next(line for line in lines[::-1] if line.startswith("try"))
        x, need = int(try_line.split()[1][:-1]), try_line.split("need ")[1].split(" |")[0].split()
        slot = need.index(try_line.split()[-2])  # the need slot of the value that said yes
        c = int(last.split()[-1])  # what the first move made
        op, c_first = [("+", 1), ("-", 1), ("-", 0), ("*", 1), ("/", 0), ("/", 1)][slot]  # c∘x, or x∘c
        a, b = (c, x) if c_first else (x, c)
        a, b = (max(a, b), min(a, b)) if op in "+*" else (a, b)
        r = apply_op(a, op, b)
        return f"{a}{op}{b}={r} vs {T} {'yes' if r == T else 'no'}\n"
    if last.endswith(" no\n") and " vs " in last:
        return "back | " + " ".join(map(str, nums)) + "\n"
    i = sum(line.startswith("try") for line in lines)  # the numbers in turn
    x, rest = nums[i], nums[:i] + nums[i + 1:]
    need, written = needs(x, T), []
    for c in makes(rest):  # each make value, checked against the need list as it is written
        written.append("-" if c is None else str(c))
        if c is not None and c in need:
            break
    verdict = "yes" if written[-1] != "-" and int(written[-1]) in need else "no"
    needed = " ".join("-" if v is None else str(v) for v in need)
    return f"try {x}: need {needed} | {' '.join(map(str, rest))} -> {' '.join(written)} {verdict}\n"


def test_search_trace_decisions_follow_from_the_prefix():
    """Every line of a search trace (before the check) is the one `next_line` computes from the text above it; the
    only exception is a slip's try line, and only where its untrained slot is."""
    task = CountdownTask(CountdownConfig(corrections=0.3))
    rng, slips = random.Random(3), 0
    for p in task.problems("train", 300, seed=4):
        segments = task.trace_segments(p, rng)
        lines = steps("".join(text for text, _ in segments))
        body = [line for line in lines if not line.startswith(("check", "answer"))]
        differ = [line for i, line in enumerate(body) if next_line(p, body[:i]) != line]
        assert all(line.startswith("try") and line.endswith(" yes\n") for line in differ), (p.prompt, differ)
        assert len(differ) == sum(not keep for _, keep in segments)
        slips += len(differ)
    assert 10 < slips < 150  # about corrections × failing tries


def test_slips_are_untrained_and_caught():
    task = CountdownTask(CountdownConfig(corrections=1.0))
    rng, seen = random.Random(0), 0
    for p in task.problems("train", 100, seed=1):
        segments = task.trace_segments(p, rng)
        text = "".join(t for t, _ in segments)
        assert task.verify(p, text).correct
        untrained = [t for t, keep in segments if not keep]
        assert len(untrained) == text.count("back |")  # one slip per failing try, each followed by its back
        if not untrained:
            continue
        seen += 1
        gold = task.gold_step_values(p, text)
        marks = [m for _, m in task.step_marks(p, text)]
        lines = steps(text)
        k = next(i for i, line in enumerate(lines) if line.startswith("try") and line.endswith(" yes\n"))
        assert gold[k] == 0.0 and marks[k] == "arithmetic error"  # the slip: a wrong make slot
        assert lines[k + 2].endswith(f" vs {p.data['target']} no\n") and gold[k + 2] == 0.0  # caught by the moves
        assert lines[k + 3].startswith("back | ") and gold[k + 3] == 1.0  # and the search goes on from the start
    assert seen > 30


CONFIGS = [(style, backtrack, check) for style in ("optimal", "search") for backtrack in (False, True)
           for check in (False, True)]


@pytest.mark.parametrize("style, backtrack, check", CONFIGS)
def test_traces_verify_and_label(style, backtrack, check):
    tokenizer = TaskTokenizer(words=CountdownTask().words, max_number=999)
    rng = random.Random(7)
    for k in (2, 3, 4):
        task = CountdownTask(CountdownConfig(k=k, style=style, backtrack=backtrack, verify=check, corrections=0.0))
        for p in task.problems("train", 60, seed=11):
            text = task.trace(p, rng)
            assert text.endswith("\n") and steps(text)[-1].startswith("answer ")
            assert task.verify(p, text).reason == "correct", (p.prompt, text)
            lines = task.steps(text)
            assert "".join(lines) == text and all(line.endswith("\n") for line in lines)
            assert any(line.startswith("back") for line in lines) <= (backtrack and style == "search" and k == 4)
            assert any(line.startswith("check") for line in lines) == check
            gold = task.gold_step_values(p, text)
            assert len(gold) == len(lines) and gold[-1] == 1.0
            if style == "optimal" or not backtrack or k < 4:  # no slips: every step of these is right
                assert gold == [1.0] * len(lines), text
            for line, g in zip(lines, gold):  # a line's label is whether its state can still reach the target
                if line.startswith("back") or (" | " in line and not line.startswith("try")):
                    state = [int(x) for x in line.split("|")[1].split()]
                    assert g == float(reachable(state, p.data["target"]))
                elif " vs " in line:  # a final move: right exactly when it says yes
                    assert g == (0.0 if line.endswith(" no\n") else 1.0)
            ids = tokenizer.encode(p.prompt + text)
            assert tokenizer.unk_id not in ids and tokenizer.decode(ids) == p.prompt + text


def test_search_traces_fail_often_and_stay_short():
    task = CountdownTask(CountdownConfig(style="search"))
    rng = random.Random(0)
    texts = [task.trace(p, rng) for p in task.problems("train", 200, seed=5)]
    assert sum(" no\ntry" in t for t in texts) > 60  # the first number tried is often not the last one
    assert sum(len(steps(t)) for t in texts) / len(texts) <= 8
    assert task.traces(task.problems("train", 1)[0], n=3, seed=2) == task.traces(task.problems("train", 1)[0], n=3,
                                                                                 seed=2)


# -- gold process labels -------------------------------------------------------------------------------------------
def test_gold_values_hand_computed():
    right = "7*3=21 | 25 21\n25+21=46 vs 46 yes\ncheck 25+(7*3)=46 ok\nanswer 25+(7*3)\n"
    assert gold_step_values(P, right) == [1.0, 1.0, 1.0, 1.0]
    wrong_first = "25-7=18 | 3 18\n18*3=54 vs 46 no\n18+3=21 vs 46 no\nback | 3 7 25\n" + right
    assert gold_step_values(P, wrong_first) == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert gold_value(P, "") == 1.0
    assert gold_value(P, "25-7=18 | 3 18\n") == 0.0
    assert gold_value(P, "25-7=18 | 3 18\nback | 3 7 25\n") == 1.0
    assert gold_value(P, P.prompt + "7*3=21 | 25 21\n") == 1.0  # a leading prompt is skipped
    assert gold_step_values(P, "7*3=21 | 25 21\n25*21=525 vs 46 no\n25+21=46 vs 46 yes\n") == [1.0, 0.0, 1.0]
    # invalid lines: wrong arithmetic, numbers not in the state, wrong restatement, false claims, unseen back
    assert gold_step_values(P, "7*3=22 | 25 22\n") == [0.0]
    assert gold_step_values(P, "7*7=49 | 3 25 49\n") == [0.0]
    assert gold_step_values(P, "7*3=21 | 25 20\n") == [0.0]
    assert gold_step_values(P, "3-7=0 | 25 0\n") == [0.0]
    assert gold_step_values(P, "25-7=18 | 3 18\n18*3=54 vs 46 yes\n") == [0.0, 0.0]
    assert gold_step_values(P, "7*3=21 | 25 21\n25+21=46 vs 46 no\n") == [1.0, 0.0]
    assert gold_step_values(P, "7*3=21 | 25 21\n25+21=46 | 46\n") == [1.0, 0.0]
    assert gold_step_values(P, "back | 3 18 7\n") == [0.0]
    assert gold_step_values(P, "check 25+7+3=35 ok\nanswer 25+7+3\n") == [0.0, 0.0]
    # a broken state stays broken until a valid back restores a seen state
    assert gold_step_values(P, "hello\n7*3=21 | 25 21\nback | 25 7 3\n7*3=21 | 25 21\n") == [0.0, 0.0, 1.0, 1.0]
    # restated numbers may come in any order; back may return to any state seen on the path
    assert gold_step_values(P, "7*3=21 | 21 25\n25-21=4 vs 46 no\nback | 25 21\n25+21=46 vs 46 yes\n") == [1.0, 0.0, 1.0, 1.0]
    task = CountdownTask()
    assert task.gold_value(P, right) == 1.0 and task.gold_step_values(P, wrong_first)[0] == 0.0


def test_gold_values_of_try_lines():
    """A try line keeps the state and is right (1.0) when its arithmetic and verdict are; otherwise 0.0, marked."""
    no3 = "try 3: need 43 49 - - - 138 | 7 25 -> 32 18 175 - no\n"
    yes25 = "try 25: need 21 71 - - - - | 3 7 -> 10 4 21 yes\n"
    assert gold_step_values(P, no3 + yes25 + "7*3=21 | 25 21\n25+21=46 vs 46 yes\n") == [1.0] * 4
    wrong = {
        "try 3: need 43 49 - - - 138 | 7 25 -> 32 18 176 - no\n": "arithmetic error",  # 25*7 is 175
        "try 3: need 43 49 - - - 139 | 7 25 -> 32 18 175 - no\n": "arithmetic error",  # 46*3 is 138
        "try 25: need 21 71 - - - - | 3 7 -> 10 4 21 no\n": "dead end",  # 21 is in the need list: wrong verdict
        "try 3: need 43 49 - - - 138 | 7 25 -> 32 18 no\n": "dead end",  # "no" before every slot is written
        "try 25: need 21 71 - - - - | 3 8 -> 11 5 24 - no\n": "dead end",  # 8 is not a number of the state
    }
    for line, mark in wrong.items():
        assert gold_step_values(P, line) == [0.0], line
        assert [m for _, m in CountdownTask().step_marks(P, line)] == [mark], line
    assert gold_step_values(P, "25-7=18 | 3 18\n" + "try 3: need 43 49 - - - 138 | 18 -> 18 no\n") == [0.0, 0.0]


def test_gold_values_of_tool_lines():
    """Tool traces: a try line whose need list is a tool's answer and a check line with the calculator's value are
    judged as their written-out forms are; a check that says "no" is worth 0.0."""
    no3 = "try 3: need 46 3 ? 43 49 - - - 138 | 7 25 -> 32 18 175 - no\n"
    yes25 = "try 25: need 46 25 ? 21 71 - - - - | 3 7 -> 10 4 21 yes\n"
    done = "7*3=21 | 25 21\n25+21=46 vs 46 yes\n"
    assert gold_step_values(P, no3 + yes25 + done + "check 25+(7*3) ? 46 ok\n") == [1.0] * 5
    assert gold_step_values(P, yes25 + done + "check 25+(7*3) ? 46 no\n") == [1.0] * 3 + [0.0]
    assert gold_step_values(P, "check 25+(7+3) ? 35 no\nanswer 25+(7*3)\n") == [0.0, 1.0]
    bad = "try 3: need 46 3 ? 43 49 - - - 139 | 7 25 -> 32 18 175 - no\n"
    assert [m for _, m in CountdownTask().step_marks(P, bad)] == ["arithmetic error"]


def test_tool_traces_check_with_the_calculator_and_back_up_when_it_disagrees():
    task = CountdownTask(CountdownConfig(checks="tool", corrections=1.0, calculator=True))
    caught = 0
    for i, p in enumerate(task.problems("train", 40, seed=2)):
        text = task.trace(p, random.Random(i))
        values = task.gold_step_values(p, text)
        assert verify(p, text).score == 1.0 and values[-2:] == [1.0, 1.0]  # "check E ? T ok", then the answer
        lines = steps(text)
        for k, line in enumerate(lines):
            if line.startswith("check") and line.endswith(" no\n"):
                caught += 1
                assert lines[k + 1].startswith("back | ") and values[k] == 0.0
    assert caught > 0
    plain = CountdownTask(CountdownConfig(checks="tool", corrections=1.0)).trace(P, random.Random(0))
    assert "check 25+(7*3)=46 ok\n" in plain  # without the calculator the check is the model's own
    with pytest.raises(ValueError, match="calculator"):
        CountdownConfig(calculator=True)


def test_steps_split():
    assert steps("") == []
    assert steps("a\nb\n") == ["a\n", "b\n"]
    assert steps("a\n\nb") == ["a\n", "\n", "b"]
    assert CountdownTask.step_delimiter == "\n"
    assert CountdownTask().words == ("answer", "check", "back", "no", "yes", "ok", "vs", "try", "need")


def test_checked_reward_pays_only_for_right_answers_reached_without_a_wrong_line():
    from searchlearn.reward.verifiers import CheckedReward, VerifierReward

    task = CountdownTask()
    problem = Problem("c", "3 7 25 -> 46\n", data={"nums": [3, 7, 25], "target": 46})
    clean = "try 25: need 21 71 - - - - | 3 7 -> 10 4 21 yes\n7*3=21 | 25 21\n25+21=46 vs 46 yes\nanswer 25+(7*3)\n"
    slip = clean.replace("10 4 21 yes", "10 5 21 yes")  # 7−3 written as 5: the answer is still right
    wrong = "7+3=10 | 25 10\n25+10=35 vs 46 no\nanswer 25+7+3\n"
    texts = [clean, slip, wrong]
    assert VerifierReward(task)([problem] * 3, texts) == [1.0, 1.0, 0.0]
    assert CheckedReward(task)([problem] * 3, texts) == [1.0, 0.0, 0.0]


# -- forward checks: no arithmetic with the target as an operand ------------------------------------------------------
FORWARD_3_7_25 = ("try 3: 7 25 -> 32 18 175 - | 32 35 29 96 - | 18 21 15 54 6 | 175 178 172 525 - no\n"
                  "try 7: 3 25 -> 28 22 75 - | 28 35 21 196 4 | 22 29 15 154 - | 75 82 68 525 - no\n"
                  "try 25: 3 7 -> 10 4 21 - | 10 35 15 250 - | 4 29 21 100 - | 21 46 yes\n")


def test_forward_trace_hand_computed():
    """Each make value c of the others, then what c and x make (c+x, c−x, c·x, c/x, larger first), each compared with
    46 as it is written; the moves of the yes follow."""
    cfg = CountdownConfig(checks="forward", corrections=0.0)
    assert trace(P, cfg, random.Random(0)) == (FORWARD_3_7_25 + "7*3=21 | 25 21\n25+21=46 vs 46 yes\n"
                                               "check 25+(7*3)=46 ok\nanswer 25+(7*3)\n")
    p = problem([20, 4, 2], 10)  # 4−2 = 2, then 20/2: the quotient, larger number first
    text = trace(p, CountdownConfig(checks="forward", corrections=0.0, verify=False), random.Random(0))
    assert text == "try 20: 4 2 -> 6 2 8 2 | 6 26 14 120 - | 2 22 18 40 10 yes\n4-2=2 | 20 2\n20/2=10 vs 10 yes\n" \
                   "answer 20/(4-2)\n"  # the second 2 (4/2) is not checked again


def test_forward_traces_verify_label_and_catch_their_slips():
    task = CountdownTask(CountdownConfig(checks="forward", corrections=0.5))
    tokenizer = TaskTokenizer(words=CountdownTask().words, max_number=999)
    rng, slips = random.Random(1), 0
    for p in task.problems("train", 200, seed=6):
        segments = task.trace_segments(p, rng)
        text = "".join(t for t, _ in segments)
        assert task.verify(p, text).correct
        lines, gold = steps(text), task.gold_step_values(p, text)
        marks = [m for _, m in task.step_marks(p, text)]
        untrained = sum(not keep for _, keep in segments)
        assert untrained == text.count("back |")
        for k, line in enumerate(lines):
            if line.startswith("try") and line.endswith(" yes\n") and k + 2 < len(lines) and " no\n" in lines[k + 2]:
                assert marks[k] == "arithmetic error" and gold[k] == 0.0  # the slip: a value written as the target
                assert lines[k + 3].startswith("back | ")
                slips += 1
            elif not any(not keep for _, keep in segments):
                assert gold[k] == 1.0, line
        assert tokenizer.unk_id not in tokenizer.encode(p.prompt + text)
    assert slips > 30


def test_gold_values_of_forward_try_lines():
    no3, no7, yes25 = FORWARD_3_7_25.splitlines(True)
    assert gold_step_values(P, no3 + no7 + yes25 + "7*3=21 | 25 21\n25+21=46 vs 46 yes\n") == [1.0] * 5
    wrong = {
        no3.replace("175 178", "175 179"): "arithmetic error",  # 175+3 is 178
        no3.replace("32 18 175", "32 18 176"): "arithmetic error",  # 25*7 is 175
        yes25.replace("21 46 yes", "21 46 no"): "dead end",  # 21+25 is the target: wrong verdict
        yes25.replace(" | 21 46 yes", " yes"): "dead end",  # yes before the value that makes it
        no3.replace(" | 175 178 172 525 -", ""): "dead end",  # "no" before every value is written
    }
    for line, mark in wrong.items():
        assert gold_step_values(P, line) == [0.0], line
        assert [m for _, m in CountdownTask().step_marks(P, line)] == [mark], line
