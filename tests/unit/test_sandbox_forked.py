"""Many programs in one sandbox run (sandbox/forked.py): each forked apart, each with its own time limit and output,
and a program that ends the supervisor costs speed, not results."""

from __future__ import annotations

import pytest

from searchlearn.sandbox import STATUSES, SandboxConfig, SandboxPool, run_forked

PROGRAMS = {
    "print": ("print(sum(range(10)))", "ok", 0, "45\n"),
    "exit": ("import sys; sys.exit(3)", "error", 3, ""),
    "loop": ("while True: pass", "timeout", None, ""),
    "raise": ("raise ValueError('boom')", "error", 1, "ValueError: boom"),
    "state": ("import builtins; builtins.print = None", "ok", 0, ""),  # the next program's print is untouched
    "after": ("print(7)", "ok", 0, "7\n"),
}


def test_each_program_gets_its_own_result():
    results = run_forked([p for p, *_ in PROGRAMS.values()], per_program_s=0.5)
    for (name, (_, status, code, out)), r in zip(PROGRAMS.items(), results):
        assert (r.status, r.exit_code) == (status, code), name
        assert out in r.stdout if name == "raise" else r.stdout == out, name


def test_a_program_that_kills_the_supervisor_costs_a_rerun_not_results():
    programs = ["print(1)", "import os, signal; os.kill(os.getppid(), signal.SIGKILL)", "print(3)"]
    results = run_forked(programs, per_program_s=1.0)
    assert [r.stdout for r in (results[0], results[2])] == ["1\n", "3\n"]
    assert results[1].status in STATUSES  # run again alone (what it does to its parent then: test_sandbox.py)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_pool_runs_chunks_in_order(workers):
    results = SandboxPool(SandboxConfig(), workers).run_batch([f"print({i})" for i in range(70)], chunk=16)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(70)]
