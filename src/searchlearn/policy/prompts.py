"""Prompts for pretrained models: a system prompt per task, the tokenizer's chat template, and prompt-based policy
initialization.

Prompt-based initialization (the roadmap's cheapest way to get reasoning behaviours, Zeng et al. 2024 §3): instead
of fine-tuning on traces, a system prompt asks an instruction-following model to decompose the problem, consider
alternatives and backtrack, and verify its answer — `system_prompt(task, style="reasoning")`.

The chat template is applied once, to the problem: `format_problems` returns problems whose `prompt` is the full
model input up to the start of the assistant's turn. Search then appends steps to that text as it would to a plain
prompt, so every searcher and learner works on chat models unchanged. A task tokenizer (`TaskTokenizer`, no chat
template, a closed vocabulary) is left alone: its prompts stay raw.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from searchlearn.types import Problem

TASK_PROMPTS = {
    "math": ("Solve the following math problem. Reason step by step, with a blank line between steps. "
             "Put the final answer in \\boxed{}."),
    "countdown": ("Combine the given numbers with + - * / to reach the target, using each number exactly once. "
                  "Write one operation per line and end with a line 'answer <expression>'."),
    "humaneval": ("Complete the following Python function. Reply with the whole function, imports included, in one "
                  "```python code block."),
}

REASONING_PROMPT = """You are a careful problem solver who thinks before answering.
- Decompose: restate what is asked, then break the problem into small sub-problems and solve them one at a time.
- Explore alternatives: if a step looks doubtful or leads nowhere, say so, go back, and try a different approach.
- Verify: before committing to an answer, check it against every condition of the problem (substitute it back, or \
recompute it another way). If the check fails, find the mistake and fix it."""

STYLES = ("none", "task", "reasoning")


def system_prompt(task: str, style: str = "task") -> str | None:
    """The system prompt for `task` ("math", "countdown", ...): None for style "none", the task's instruction for
    "task", and the reasoning-behaviour prompt followed by the task's instruction for "reasoning"."""
    if style not in STYLES:
        raise ValueError(f"prompt style must be one of {STYLES}, got {style!r}")
    if style == "none":
        return None
    instruction = TASK_PROMPTS.get(task, "")
    if style == "task":
        return instruction or None
    return f"{REASONING_PROMPT}\n\n{instruction}".rstrip()


def uses_chat_format(tokenizer) -> bool:
    """Whether prompts for this tokenizer are formatted (an HF tokenizer) or kept raw (a task tokenizer)."""
    return hasattr(tokenizer, "apply_chat_template")


def format_prompt(tokenizer, user: str, system: str | None = None) -> str:
    """The model input for one user message: the tokenizer's chat template (with the system prompt; templates that
    refuse a system role get it prepended to the user message), or, without a template, system and user text joined
    by a blank line. A task tokenizer gets `user` unchanged."""
    if not uses_chat_format(tokenizer):
        return user
    if system is None:
        return tokenizer.apply_chat_template([{"role": "user", "content": user}])
    try:
        return tokenizer.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": user}])
    except Exception:  # noqa: BLE001 — jinja's TemplateError (e.g. "roles must alternate"): no system role
        return tokenizer.apply_chat_template([{"role": "user", "content": f"{system}\n\n{user}"}])


def format_problems(problems: Sequence[Problem], tokenizer, task: str, style: str = "task") -> list[Problem]:
    """Problems whose prompt is the chat-formatted model input; the raw question is kept in `data["raw_prompt"]`."""
    if not uses_chat_format(tokenizer):
        return list(problems)
    system = system_prompt(task, style)
    return [replace(p, prompt=format_prompt(tokenizer, p.prompt, system), data={**p.data, "raw_prompt": p.prompt})
            for p in problems]
