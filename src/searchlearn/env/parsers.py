"""Tool-call protocols (contracts.ToolCallParser): how a model writes a call and reads the answer.

    TagParser     the tiny model's: "NAME ARG ARG ?" ends the turn, the output follows after a space
                  ("try 7: need 46 7 ? 39 53 - - - 322 | ...": a Countdown tool call inside a try line)
    HermesParser  chat models' (Qwen, Hermes): <tool_call>{"name": ..., "arguments": {...}}</tool_call>, answered
                  by <tool_response>...</tool_response>

A malformed call parses to a ToolCall with `error` (the rollout answers it as an observation); it never raises.
"""

from __future__ import annotations

import json
from typing import Sequence

from searchlearn.types import ToolCall


class TagParser:
    def __init__(self, names: Sequence[str], end: str = "?"):
        self.names, self.end = tuple(names), end

    def parse(self, text: str) -> ToolCall | None:
        if not text.endswith(self.end):
            return None
        words = text[: -len(self.end)].rsplit("\n", 1)[-1].split()
        at = max((i for i, w in enumerate(words) if w in self.names), default=None)
        if at is None:
            return ToolCall(error=f"no tool name before {self.end!r} (tools: {', '.join(self.names)})")
        return ToolCall(words[at], {str(i): v for i, v in enumerate(words[at + 1:])})

    def observation(self, output: str) -> str:
        return " " + output


class HermesParser:
    end = "</tool_call>"
    start = "<tool_call>"

    def __init__(self, response_prefix: str = "\n<tool_response>\n", response_suffix: str = "\n</tool_response>\n"):
        self.response_prefix, self.response_suffix = response_prefix, response_suffix

    def parse(self, text: str) -> ToolCall | None:
        if not text.rstrip().endswith(self.end):
            return None
        body = text.rstrip()[: -len(self.end)]
        if self.start not in body:
            return ToolCall(error=f"{self.end} without {self.start}")
        raw = body.rsplit(self.start, 1)[1].strip()
        try:
            call = json.loads(raw)
        except json.JSONDecodeError as e:
            return ToolCall(error=f"the call is not JSON: {e.msg} at character {e.pos}")
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return ToolCall(error='a call is {"name": ..., "arguments": {...}}')
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):  # some models write the arguments as a JSON string
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                return ToolCall(error="arguments must be a JSON object")
        if not isinstance(arguments, dict):
            return ToolCall(error="arguments must be a JSON object")
        return ToolCall(call["name"], arguments)

    def observation(self, output: str) -> str:
        return f"{self.response_prefix}{output}{self.response_suffix}"
