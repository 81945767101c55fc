"""Many sandboxed programs at once: a thread per running program (each only waits on its child process)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

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
