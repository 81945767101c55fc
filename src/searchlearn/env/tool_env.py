"""A task with tools as an Environment (contracts.Environment): the model calls tools through a protocol, reads
their output, and ends the episode with a turn that calls nothing; the task's verifier scores the whole completion.

    env = ToolEnv(task, [tool(need)], TagParser(["need"]))
    prompt = env.reset(problem)
    env.step("try 7: need 46 7 ?")   -> StepResult(" 39 53 - - - 322", 0.0, False, {"tool": "need"})
    env.step(" | 3 25 -> ... answer 25+(7*3)\\n")  -> StepResult("", 1.0, True, {"verdict": "correct"})

Long tool output is cut to `max_observation_chars` (with a marker the model can see).
"""

from __future__ import annotations

from typing import Sequence

from searchlearn.contracts import Task, ToolCallParser
from searchlearn.env.tools import Tool, call_tool
from searchlearn.types import Problem, StepResult

TRUNCATED = " ..."


class ToolEnv:
    def __init__(self, task: Task, tools: Sequence[Tool], parser: ToolCallParser, max_observation_chars: int = 512):
        self.task, self.parser, self.max_observation_chars = task, parser, max_observation_chars
        self.tools = {t.name: t for t in tools}
        self.stop = (parser.end,)
        self.problem: Problem | None = None
        self.completion = ""

    def reset(self, problem: Problem) -> str:
        self.problem, self.completion = problem, ""
        return problem.prompt

    def step(self, action: str) -> StepResult:
        if self.problem is None:
            raise RuntimeError("step before reset")
        self.completion += action
        call = self.parser.parse(action)
        if call is None:
            verdict = self.task.verify(self.problem, self.completion)
            return StepResult("", verdict.score, True, {"verdict": verdict.reason})
        output = call_tool(self.tools, call)
        if len(output) > self.max_observation_chars:
            output = output[: self.max_observation_chars - len(TRUNCATED)] + TRUNCATED
        observation = self.parser.observation(output)
        self.completion += observation
        return StepResult(observation, 0.0, False, {"tool": call.name or None, "error": output.startswith("error:")})
