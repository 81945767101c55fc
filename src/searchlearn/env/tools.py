"""Tools: plain Python functions a model may call, each with an OpenAI-style JSON schema built from its signature.

    @tool
    def need(target: int, x: int) -> str:
        "The need list of x for the target."
        ...

`call_tool(tools, call)` runs one parsed call and always returns text for the model to read: a wrong name, a missing
or ill-typed argument, or an exception inside the tool comes back as "error: ..." (TRL's environments answer the
model the same way), never raised into the rollout. A tool is project code; a program the model wrote runs only in
the sandbox (`searchlearn.sandbox`), e.g. behind a tool that hands it there.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from searchlearn.types import ToolCall

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


@dataclass(frozen=True)
class Tool:
    name: str
    fn: Callable[..., Any]
    schema: dict  # {"type": "function", "function": {"name", "description", "parameters": JSON schema}}


def tool(fn: Callable[..., Any]) -> Tool:
    """`fn` as a Tool: its name, its docstring's first line as the description, its annotated parameters
    (int, float, str, bool) as the JSON schema's properties, those without a default required."""
    hints = inspect.get_annotations(fn, eval_str=True)
    params = inspect.signature(fn).parameters
    properties = {name: {"type": _JSON_TYPES.get(hints.get(name), "string")} for name in params}
    required = [name for name, p in params.items() if p.default is inspect.Parameter.empty]
    doc = (inspect.getdoc(fn) or "").split("\n")[0]
    return Tool(fn.__name__, fn, {"type": "function", "function": {
        "name": fn.__name__, "description": doc,
        "parameters": {"type": "object", "properties": properties, "required": required}}})


def _convert(value: Any, kind: str) -> Any:
    if kind == "integer" and not isinstance(value, bool):
        return int(value)
    if kind == "number":
        return float(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else {"true": True, "false": False}[str(value).lower()]
    return value if kind != "string" else str(value)


def call_tool(tools: Mapping[str, Tool], call: ToolCall) -> str:
    """The output of `call` as text, or "error: <why>" (module docstring)."""
    if call.error:
        return f"error: {call.error}"
    if call.name not in tools:
        return f"error: no tool {call.name!r} (tools: {', '.join(sorted(tools))})"
    t = tools[call.name]
    spec = t.schema["function"]["parameters"]
    names = list(spec["properties"])
    arguments: dict[str, Any] = {}
    for key, value in call.arguments.items():  # positional ("0", "1", ...) or by name
        name = names[int(key)] if key.isdigit() and int(key) < len(names) else key
        if name not in spec["properties"]:
            return f"error: {call.name} takes {', '.join(names)}; got {key!r}"
        try:
            arguments[name] = _convert(value, spec["properties"][name]["type"])
        except (ValueError, KeyError, TypeError):
            return f"error: {name} must be {spec['properties'][name]['type']}, got {value!r}"
    missing = [n for n in spec["required"] if n not in arguments]
    if missing:
        return f"error: {call.name} needs {', '.join(missing)}"
    try:
        return str(t.fn(**arguments))
    except Exception as e:  # noqa: BLE001 — a tool's failure is the model's to read
        return f"error: {type(e).__name__}: {e}"
