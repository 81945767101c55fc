"""A policy whose `generate` answers tool calls inside each completion: what step-wise searches and Monte-Carlo labels
need from a task with tools.

Tree searches and MC labelling ask for the next step of text prompts ("...\\n" stops) and know nothing of environments.
`ToolPolicy.generate` runs each prompt as a short episode (env/rollout.py) in which a turn that ends with a tool call
is answered (the observation appended as ids, as in every rollout) and the model goes on, until it ends the step, ends
with EOS, or reaches `max_new_tokens` (observations included). The completion's text holds the observations, so the
next step's prompt carries them, and its `mask` marks them (False). Tools must be stateless: a prompt is a fresh
context, so only what its text shows is known (Countdown's `need` and `check` are).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from searchlearn.env.rollout import EpisodeLimits, episode_completion, run_episodes
from searchlearn.env.tools import call_tool
from searchlearn.types import Completion, Problem, SamplingParams, StepResult


class _CallsOnly:
    """An environment that answers a turn's tool call and ends at any other turn (no reward: search scores paths)."""

    def __init__(self, tools, parser):
        self.tools, self.parser, self.stop = tools, parser, (parser.end,)

    def reset(self, problem: Problem) -> str:
        return problem.prompt

    def step(self, action: str) -> StepResult:
        call = self.parser.parse(action)
        if call is None:
            return StepResult("", 0.0, True, {})
        return StepResult(self.parser.observation(call_tool(self.tools, call)), 0.0, False, {"tool": call.name})


class ToolPolicy:
    """`policy` (every attribute delegated) with tool calls answered inside `generate`; `make_env()` is the task's
    environment factory (a ToolEnv: its `tools` and `parser` are used)."""

    def __init__(self, policy, make_env):
        env = make_env()
        self.policy, self._env = policy, _CallsOnly(env.tools, env.parser)

    def __getattr__(self, name: str):
        return getattr(self.policy, name)

    def generate(self, prompts: Sequence[str], params: SamplingParams, budgets: Sequence[int] | None = None
                 ) -> list[Completion]:
        return self._generate([Problem(f"prompt{i}", p) for i, p in enumerate(prompts)], params, budgets=budgets)

    def generate_ids(self, prompt_ids: Sequence[list[int]], params: SamplingParams,
                     budgets: Sequence[int] | None = None, opened: Sequence[str] | None = None) -> list[Completion]:
        """`generate` from token ids (a tree rollout's branch continues the ids of its prefix, observations included;
        `budgets`: each prompt's own cap on new tokens, answers included; `opened`: the text of the turn each prompt
        leaves open, env/rollout.py)."""
        return self._generate([Problem(f"prompt{i}", "") for i in range(len(prompt_ids))], params, prompt_ids,
                              budgets, opened)

    def _generate(self, problems: list[Problem], params: SamplingParams, contexts=None, budgets=None, opened=None
                  ) -> list[Completion]:
        episodes = run_episodes(self.policy, problems, lambda: self._env, params,
                                EpisodeLimits(max_tokens=params.max_new_tokens), contexts, budgets=budgets,
                                opened=opened)
        out = []
        for ep in episodes:
            c = episode_completion(ep)
            stopped = any(s and ep.text.endswith(s) for s in params.stop)
            out.append(replace(c, finish_reason="eos" if ep.eos else "stop" if stopped else "length"))
        return out


def with_tools(policy, task):
    """The policy searches and MC labels sample from: `policy` itself, or a ToolPolicy for a task with tools."""
    make_env = task.environment() if hasattr(task, "environment") else None
    if make_env is None or isinstance(policy, ToolPolicy):
        return policy
    return ToolPolicy(policy, make_env)
