"""Dataclass configs: build from dicts / YAML, apply dotted CLI overrides, reject unknown keys (listing the valid ones).

    cfg = load(DemoConfig, "configs/demo.yaml", overrides=["learn.lr=3e-4", "task.k=4"])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key or value that does not fit its dataclass."""


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclass fields; unknown keys raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where or cls.__name__}; valid keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = from_dict(kind, value, f"{where}{name}.")
        elif isinstance(value, list) and _is_tuple(kind):
            value = tuple(value)
        kwargs[name] = _coerce(kind, value, f"{where}{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from e


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def override(config: T, assignments: list[str]) -> T:
    """Apply `a.b.c=value` assignments (values parsed as YAML scalars) and rebuild, so checks run again."""
    data = to_dict(config)
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"override {assignment!r} is not of the form key.path=value")
        path, raw = assignment.split("=", 1)
        node = data
        keys = path.strip().split(".")
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                raise ConfigError(f"override {path!r}: {key!r} is not a config section")
            node = node[key]
        if keys[-1] not in node:
            raise ConfigError(f"override {path!r}: unknown key {keys[-1]!r}; valid keys: {', '.join(sorted(node))}")
        node[keys[-1]] = parse_value(raw, path)
    return from_dict(type(config), data)


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] = (), base: T | None = None) -> T:
    """Defaults (or `base`), then the YAML file's keys, then the overrides."""
    config = base if base is not None else cls()
    if path is not None:
        data = to_dict(config)
        _merge(data, read_yaml(path))
        config = from_dict(cls, data)
    return override(config, list(overrides))


def parse_value(raw: str, key: str) -> Any:
    """An override's value, read as a YAML scalar or flow collection (`3e-4`, `true`, `[1, 4]`)."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"override {key!r}: {raw!r} is not a valid YAML value") from None


def read_yaml(path: str | Path) -> dict:
    """A YAML file's mapping (empty file: {}); a missing file is FileNotFoundError, a malformed one a ConfigError
    naming the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file ({e.reason})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _coerce(kind: Any, value: Any, where: str) -> Any:
    """Numbers written loosely (YAML reads `3e-4` as a string, `1` where a float is meant) become the field's type."""
    if kind is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if kind is int and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    return value


def _is_tuple(kind: Any) -> bool:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_is_tuple(a) for a in typing.get_args(kind))
    return origin is tuple or kind is tuple
