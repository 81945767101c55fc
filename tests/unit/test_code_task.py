"""The code task: the grammar's programs (written and interpreted), the split, the sandboxed verifier with hidden
tests, the traces and the multi-turn environment that runs the model's programs, and choosing the task in a config."""

from __future__ import annotations

import random

import pytest

from searchlearn.config import ConfigError
from searchlearn.env import run_episodes
from searchlearn.loop.config import load_loop_config
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.tasks.code import CodeConfig, CodeTask, harness, is_held_out, program_of
from searchlearn.tasks.code_programs import Program, all_programs, near_misses
from searchlearn.types import Problem, SamplingParams

from tests.unit.test_env import TurnScript


@pytest.fixture(scope="module")
def task():
    return CodeTask(CodeConfig(workers=2))


def test_a_program_is_written_and_interpreted_as_python_would():
    p = Program("*", 2, ">", 3, "sum")
    assert p.source() == "def f(x): return sum([v * 2 for v in x if v > 3])"
    assert p.run([5, 1, 4]) == 18  # 5*2 + 4*2
    q = Program("%", 3, "odd", 0, "")
    assert q.source() == "def f(x): return [v % 3 for v in x if v % 2 == 1]"
    assert q.run([7, 2, 9, 5]) == [1, 0, 2]
    assert Program("-", 2, "", 0, "sorted").run([3, 0]) == [-2, 1]
    with pytest.raises(ValueError):
        Program("", 0, ">", 3, "max")  # max after a filter could see an empty list


def test_the_sandbox_computes_what_the_interpreter_computes(task):
    """Parity over a sample of the grammar: each program's source, run in the sandbox on a hidden input, returns the
    interpreter's value (the harness reports "ok" against the interpreted answers)."""
    rng = random.Random(0)
    programs = rng.sample(all_programs(), 24)
    problems = []
    for i, p in enumerate(programs):
        xs = [[rng.randint(0, 9) for _ in range(rng.randint(2, 5))] for _ in range(2)]
        problems.append(Problem(f"p{i}", "", {"visible": [(xs[0], p.run(xs[0]))], "hidden": [(xs[1], p.run(xs[1]))]}))
    assert task.run_many(problems, [p.source() for p in programs]) == [("ok", "ok")] * len(programs)


def test_near_misses_are_one_edit_away():
    p = Program("+", 2, "", 0, "")
    misses = near_misses(p)
    assert Program("+", 3, "", 0, "") in misses and Program("*", 2, "", 0, "") in misses
    assert Program("+", 2, "even", 0, "") in misses and Program("+", 2, "", 0, "len") in misses
    assert p not in misses and len(set(misses)) == len(misses)
    assert all(sum(a != b for a, b in zip(vars(p).values(), vars(m).values())) <= 2 for m in misses)


def test_the_test_split_holds_out_whole_programs(task):
    train = {p.data["program"] for p in task.problems("train", 300, seed=1)}
    test = {p.data["program"] for p in task.problems("test", 100, seed=1)}
    assert train.isdisjoint(test)
    by_source = {p.source(): p for p in all_programs()}
    assert all(is_held_out(by_source[s], task.config) for s in test)
    share = sum(is_held_out(p, task.config) for p in all_programs()) / len(all_programs())
    assert 0.15 < share < 0.25  # held_out = 0.2
    assert [p.prompt for p in task.problems("test", 5, seed=1)] == [p.prompt for p in task.problems("test", 5, seed=1)]


def test_the_verifier_runs_hidden_tests(task):
    problem = Problem("h", "f([1, 2]) = [2, 4]\n", {"visible": [([1, 2], [2, 4])], "hidden": [([3], [6]), ([0], [0])]})
    fits_visible_only = "def f(x): return [v * 2 if v < 3 else 0 for v in x]"
    verdicts = task.verify_batch([problem] * 5, [
        "run def f(x): return [v * 2 for v in x] ? ok\n",
        f"run {fits_visible_only} ? ok\n",
        "run def f(x): return [v + 1 for v in x] ? ok\n",  # the text says ok; the sandbox decides
        "run def f(x): return [v for v in y] ?",
        "no program here",
    ])
    assert [v.score for v in verdicts] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert verdicts[1].reason == "failed: hidden tests: f([3]) = [0] want [6]"
    assert verdicts[2].reason == "failed: f([1, 2]) = [2, 3] want [2, 4]"
    assert (verdicts[3].reason, verdicts[4].reason) == ("failed: error", "no program")


def test_a_program_cannot_print_its_way_to_a_pass(task):
    problem = Problem("cheat", "", {"visible": [([1], [9])], "hidden": [([2], [9])]})
    code = "def f(x): print('ok'); print('@0@ok'); return 0"
    assert task.run_many([problem], [code]) == [(f"f([1]) = 0 want [9]", "f([2]) = 0 want [9]")]
    assert "@" in harness(code, [], [], "@n@")


def test_program_of_reads_the_last_program():
    text = "run def f(x): return [v for v in x] ? f([1]) = [1] want [2]\nrun def f(x): return [v * 2 for v in x] ? ok\n"
    assert program_of(text) == "def f(x): return [v * 2 for v in x]"
    assert program_of("def f(x): return len([v for v in x])") == "def f(x): return len([v for v in x])"
    assert program_of("run f ? error\n") is None


def test_traces_pass_and_train_only_the_right_program(task):
    retried = 0
    for i, problem in enumerate(task.problems("train", 40, seed=2)):
        segments = task.trace_segments(problem, random.Random(i))
        text = "".join(s for s, _ in segments)
        assert task.verify(problem, text).score == 1.0
        trained = [s for s, keep in segments if keep]
        assert trained == [f"run {problem.data['program']} ?"]
        if len(segments) == 4:  # a near miss first: it fails a visible example, and the feedback says how
            retried += 1
            assert not task.verify(problem, segments[0][0]).score
            assert segments[1][0].startswith(" f(") and " want " in segments[1][0]
    assert 10 < retried < 30  # retry = 0.5


def test_the_environment_runs_programs_and_answers_with_the_sandbox(task):
    """Trace turns played to the environment get the trace's own observations back; a call with no program reads
    "error"; a turn without "?" ends the episode with the verdict on the last program."""
    tokenizer = TaskTokenizer(task.words, symbols=task.symbols)
    problems = [p for p in task.problems("train", 30, seed=4)]
    for i, problem in enumerate(problems[:6]):
        segments = task.trace_segments(problem, random.Random(i))
        turns = [s for s, _ in segments[::2]] + [""]  # the model's turns; the environment writes the rest
        [ep] = run_episodes(TurnScript(tokenizer, turns), [problem], task.environment(),
                            SamplingParams(temperature=0.0, max_new_tokens=400))
        assert ep.text == "".join(s for s, _ in segments) and ep.reward == 1.0, ep.text
        assert tokenizer.unk_id not in ep.token_ids
    env = task.environment()()
    env.reset(problems[0])
    assert env.step("run nothing ?").observation == " error\n"
    step = env.step("done")
    assert step.done and step.reward == 0.0 and step.info["verdict"] == "no program"


def test_max_runs_ends_the_episode(task):
    env = CodeTask(CodeConfig(max_runs=2)).environment()()
    problem = task.problems("train", 1, seed=9)[0]
    env.reset(problem)
    wrong = "run def f(x): return [v for v in x if v > 99] ?"
    assert not env.step(wrong).done and not env.step(wrong).done
    assert env.step(wrong).done  # a third run is not answered: the episode ends, the last program verified


def test_the_loop_config_chooses_the_task():
    cfg = load_loop_config(None, ["task.retry=0.25", "task_name=code"])  # task_name applies first
    assert cfg.task_name == "code" and cfg.task == CodeConfig(retry=0.25)
    assert isinstance(cfg.build_task(), CodeTask)
    assert load_loop_config(None, ["task.checks=tool"]).task.checks == "tool"  # the default task's settings
    with pytest.raises(ConfigError, match="unknown key 'checks'"):
        load_loop_config(None, ["task_name=code", "task.checks=tool"])
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        load_loop_config(None, ["task_name=nope"])


def test_the_tokenizer_keeps_the_task_symbols(tmp_path, task):
    tokenizer = TaskTokenizer(task.words, symbols=task.symbols)
    text = task.trace(task.problems("train", 1, seed=0)[0], random.Random(0)) + "[v % 2 for v in x if v < 3]"
    ids = tokenizer.encode(text)
    assert tokenizer.unk_id not in ids and tokenizer.decode(ids) == text
    assert len(tokenizer.encode("sorted([v * 2")) == 8  # sorted ( [ v, space, *, space, 2: one token each
    tokenizer.save(tmp_path)
    assert TaskTokenizer.load(tmp_path).encode(text) == ids
    assert TaskTokenizer().encode("[") == [TaskTokenizer().unk_id]  # not in the default alphabet


def test_a_turn_of_many_episodes_runs_its_programs_in_one_batch(task, monkeypatch):
    calls = []
    run_batch = task._pool.run_batch
    monkeypatch.setattr(task._pool, "run_batch", lambda jobs, **kw: calls.append(len(jobs)) or run_batch(jobs, **kw))
    tokenizer = TaskTokenizer(task.words, symbols=task.symbols)
    problems = task.problems("train", 8, seed=11)
    turns = ["run def f(x): return [v + 1 for v in x] ?", "run def f(x): return [v * 3 for v in x] ?", ""]
    episodes = run_episodes(TurnScript(tokenizer, turns), problems, task.environment(),
                            SamplingParams(temperature=0.0, max_new_tokens=100))
    assert [ep.turns for ep in episodes] == [3] * 8
    assert calls == [8, 8]  # one batch per turn that ran programs; the verdicts then come from the cache
