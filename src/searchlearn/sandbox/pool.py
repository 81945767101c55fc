"""Many sandboxed programs at once: a thread per running program (each only waits on its child process), or, for
many short programs, chunks of them forked inside one sandbox run each (forked.py)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from searchlearn.sandbox.forked import run_forked
from searchlearn.sandbox.limits import RunResult, SandboxConfig
from searchlearn.sandbox.run import run_program


class SandboxPool:
    """`run([(source, stdin), ...])` runs up to `workers` programs at a time; results in input order."""

    def __init__(self, config: SandboxConfig | None = None, workers: int | None = None):
        self.config = config if config is not None else SandboxConfig()
        self.workers = workers or os.cpu_count() or 1

    def run(self, programs: Sequence[tuple[str, str] | str]) -> list[RunResult]:
        jobs = [(p, "") if isinstance(p, str) else p for p in programs]
        if len(jobs) <= 1 or self.workers == 1:
            return [run_program(source, stdin, self.config) for source, stdin in jobs]
        with ThreadPoolExecutor(max_workers=self.workers) as executor:
            return list(executor.map(lambda job: run_program(job[0], job[1], self.config), jobs))

    def run_batch(self, programs: Sequence[str], per_program_s: float = 1.0, chunk: int = 64) -> list[RunResult]:
        """Short programs (empty stdin), `chunk` of them per sandbox run (`run_forked`), `workers` runs at a time."""
        chunks = [list(programs[i: i + chunk]) for i in range(0, len(programs), chunk)]
        if len(chunks) <= 1 or self.workers == 1:
            return [r for c in chunks for r in run_forked(c, self.config, per_program_s)]
        with ThreadPoolExecutor(max_workers=self.workers) as executor:
            return [r for part in executor.map(lambda c: run_forked(c, self.config, per_program_s), chunks)
                    for r in part]
