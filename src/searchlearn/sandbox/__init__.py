"""The code sandbox: programs the model wrote run here, never in a project process (docs/DESIGN.md).

    run_program(source, stdin, config) -> RunResult      one program, a fresh directory, limits, isolation
    SandboxPool(config, workers).run(programs)            many at once
    run_forked(programs, config) / SandboxPool.run_batch   many short ones, forked inside one sandbox run
    detect(config) -> Isolation                           bwrap namespaces where they work, else rlimits only
"""

from searchlearn.sandbox.forked import run_forked
from searchlearn.sandbox.isolation import Isolation, detect
from searchlearn.sandbox.limits import STATUSES, RunResult, SandboxConfig
from searchlearn.sandbox.pool import SandboxPool
from searchlearn.sandbox.run import run_program

__all__ = ["STATUSES", "Isolation", "RunResult", "SandboxConfig", "SandboxPool", "detect", "run_forked", "run_program"]
