"""Many short programs in one sandbox run: a supervisor, itself sandboxed, forks a child per program.

A fresh interpreter under bwrap costs 20–40 ms (docs/environments.md); the code task's programs run in microseconds,
and an RL step runs hundreds of them. `run_forked(programs, config, per_program_s)` starts one sandboxed supervisor
(`run_program`, with every limit and the isolation of a single program) and hands it the programs as data on stdin.
For each one it writes the program to a file and forks a child that runs that file as a script (`runpy`, as
`python FILE` would), with its stdout and stderr on a pipe; it reads the first `head_bytes` of them, kills the child at
`per_program_s`, and prints one JSON line behind a fresh nonce (so that a program's own
prints cannot pass for a result). A child is a fork, not a thread: a program cannot touch the next one's state.
Whatever ends the supervisor early (a program that kills it, exhausts its limits or floods its output) costs only
speed: the programs without a result run again one at a time with `run_program`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from typing import Sequence

from searchlearn.sandbox.limits import RunResult, SandboxConfig
from searchlearn.sandbox.run import run_program

SUPERVISOR = r"""
import json, os, runpy, select, signal, sys, time
job = json.load(sys.stdin)
marker, limit, head = job["marker"], job["seconds"], job["head"]
for i, source in enumerate(job["programs"]):
    path = f"program_{i}.py"
    with open(path, "w") as f:
        f.write(source)
    r, w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        os.dup2(w, 2)
        os.close(w)
        status = 0
        try:
            runpy.run_path(path, run_name="__main__")  # the file as a script, as `python program_i.py` runs it
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        except BaseException:
            import traceback
            traceback.print_exc()
            status = 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)
    os.close(w)
    out, timed_out = bytearray(), False
    while True:
        left = start + limit - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        if select.select([r], [], [], left)[0]:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            out += chunk[: max(0, head - len(out))]
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, code = os.waitpid(pid, 0)
    os.close(r)
    os.remove(path)
    status = ("timeout" if timed_out else "ok" if os.WIFEXITED(code) and os.WEXITSTATUS(code) == 0
              else "error" if os.WIFEXITED(code) else "killed")
    print(marker + json.dumps({"i": i, "status": status, "exit_code": os.WEXITSTATUS(code) if os.WIFEXITED(code)
                               else None, "stdout": out.decode("utf-8", "replace"),
                               "seconds": time.monotonic() - start}), flush=True)
"""


def run_forked(programs: Sequence[str], config: SandboxConfig | None = None, per_program_s: float = 1.0
               ) -> list[RunResult]:
    """Run each program (with empty stdin) as `run_program` would, in one sandboxed supervisor; results in order.
    A result's `stdout` holds the program's stdout and stderr together."""
    config = config if config is not None else SandboxConfig()
    if not programs:
        return []
    marker = f"@{secrets.token_hex(8)}@"
    job = json.dumps({"marker": marker, "seconds": per_program_s, "head": config.head_bytes,
                      "programs": list(programs)})
    budget = replace(config, timeout_s=config.timeout_s + per_program_s * len(programs),
                     cpu_s=config.cpu_s + int(per_program_s * len(programs)) + 1,
                     head_bytes=(config.head_bytes + 256) * len(programs) + 4096,
                     output_bytes=max(config.output_bytes, (config.head_bytes + 256) * len(programs) + 4096))
    supervisor = run_program(SUPERVISOR, job, budget)
    results: dict[int, RunResult] = {}
    for line in supervisor.stdout.splitlines():
        if line.startswith(marker):
            r = json.loads(line[len(marker):])
            results[r["i"]] = RunResult(r["status"], r["exit_code"], r["stdout"], "", r["seconds"],
                                        "timeout" if r["status"] == "timeout" else "")
    return [results[i] if i in results else run_program(p, "", replace(config, timeout_s=per_program_s))
            for i, p in enumerate(programs)]
