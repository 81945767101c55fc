"""Environments: multi-turn rollouts where the model calls tools and reads their output (contracts.Environment).

    tools.py     Tool, @tool (OpenAI-style schemas from signatures), call_tool (errors as observations)
    parsers.py   TagParser (the tiny model's "NAME ARGS ?"), HermesParser (<tool_call>{json}</tool_call>)
    tool_env.py  ToolEnv: a task + tools + a parser as an Environment
    rollout.py   run_episodes: many environments, one engine call per turn, observation tokens masked
"""

from searchlearn.env.parsers import HermesParser, TagParser
from searchlearn.env.rollout import Episode, EpisodeLimits, run_episodes
from searchlearn.env.tool_env import ToolEnv
from searchlearn.env.tools import Tool, call_tool, tool

__all__ = ["Episode", "EpisodeLimits", "HermesParser", "TagParser", "Tool", "ToolEnv", "call_tool", "run_episodes",
           "tool"]
