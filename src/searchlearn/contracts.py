"""The contracts every stage is written against, as `typing.Protocol`s: any object with these methods fits.

The loop, the searchers and the learners use these and never a concrete class, so a new task, policy backend, reward
or searcher plugs in without touching them (docs/DESIGN.md). The records they exchange are in `types.py`.

    Task           problems + verifier + step format (+ gold labels and traces where the task has them)
    Policy         generate(prompts, SamplingParams) -> completions, charged to a ledger
    TrainablePolicy  a Policy whose weights a learner can train: its torch module and tokenizer
    OutcomeReward  (problems, completions) -> [float | None]
    ProcessReward  (problems, prefixes) -> [[float per step]]
    Searcher       (problems, policy, task, scorer, budget, config) -> [SearchResult]
    Environment    reset(problem) -> observation; step(action text) -> StepResult (multi-turn, tools)
    ToolCallParser the text that ends a call; the call in a turn's text; how a tool's output is written back
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from searchlearn.types import (
    Completion,
    Ledger,
    Problem,
    SamplingParams,
    SearchResult,
    Step,
    StepResult,
    ToolCall,
    Verdict,
)

if TYPE_CHECKING:  # annotations only: contracts import no implementation
    import torch

    from searchlearn.search.budget import Budget


@runtime_checkable
class Task(Protocol):
    """A problem source with a verifier and a step format. A verifier never raises on model text and never evaluates
    it: it parses with a whitelist."""

    name: str
    step_delimiter: str  # what ends a reasoning step ("\n" for Countdown, "\n\n" for math)

    def problems(self, split: str, n: int, seed: int = 0) -> list[Problem]: ...

    def verify(self, problem: Problem, text: str) -> Verdict: ...

    def answer_key(self, problem: Problem, text: str) -> Hashable | None:
        """What majority voting compares (None: no answer)."""

    def steps(self, text: str) -> list[str]:
        """`text` cut into steps, each keeping its delimiter, so "".join(steps) == text."""


@runtime_checkable
class Policy(Protocol):
    """Something that samples: completions come back prompt-major, n per prompt, charged to `ledger`."""

    tokenizer: Any  # encode / encode_batch / decode, bos_id / eos_id / pad_id
    ledger: Ledger
    n_params: int  # non-embedding parameters (the ledger's FLOP estimate)

    def generate(self, prompts: list[str], params: SamplingParams, budgets: list[int] | None = None
                 ) -> list[Completion]: ...

    def generate_ids(self, prompt_ids: list[list[int]], params: SamplingParams,
                     budgets: list[int] | None = None) -> list[Completion]:
        """`generate` from token ids: a multi-turn rollout appends observation ids and never re-tokenizes.
        `budgets` (one per prompt): that prompt's own cap on new tokens, at most params.max_new_tokens."""

    def encode_prompts(self, prompts: list[str]) -> list[list[int]]: ...

    def logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[torch.Tensor]: ...


@runtime_checkable
class TrainablePolicy(Policy, Protocol):
    """A policy a learner trains in place: `model` is a torch module mapping (input_ids, attention_mask) to logits,
    with save_pretrained / from_pretrained; its sampler must see every update (weights shared, or synced)."""

    model: torch.nn.Module


class OutcomeReward(Protocol):
    """Scores finished completions (or their texts): one float in [0, 1] each, or None when it does not apply. TRL's
    reward callables fit through `reward.verifiers.TRLReward`."""

    def __call__(self, problems: Sequence[Problem], completions: Sequence[Completion | str]) -> list[float | None]: ...


class ProcessReward(Protocol):
    """Scores every step of each prefix (a string the scorer splits with the task's delimiter, or the `Step`s a search
    recorded). A scorer that runs a model charges what it reads to its `ledger`."""

    def __call__(self, problems: Sequence[Problem], prefixes: Sequence[str | Sequence[Step]]
                 ) -> list[list[float]]: ...


class Searcher(Protocol):
    """One search over a batch of problems: each engine call expands the frontier of every problem at once. `config`
    is the searcher's own dataclass (its `config` in the registry), None for its defaults."""

    def __call__(self, problems: Sequence[Problem], policy: Policy, task: Task, scorer: ProcessReward,
                 budget: Budget, config: Any = None) -> list[SearchResult]: ...


class Environment(Protocol):
    """A multi-turn episode, gym-like (SkyRL-Gym's init/step, TRL's environment_factory): `reset` starts it on a
    problem and returns the first observation (the prompt); each model turn's text goes to `step`, whose observation
    the rollout appends as token ids, masked out of every loss, before the model goes on. `done` ends the episode;
    its `reward` is the episode's outcome (env/rollout.py sums the rewards of all steps).

    Optional: `batched = True` with a static `prefetch(envs, actions)` makes the rollout step turn by turn and hand
    it every action of a turn before the `step` calls, to do their work in one batch (the code task's sandbox runs)."""

    def reset(self, problem: Problem) -> str: ...

    def step(self, action: str) -> StepResult: ...


class ToolCallParser(Protocol):
    """How a model calls tools: generation pauses at `end` (a stop string); `parse` reads the call that the turn's
    text ends with (None: the turn made no call, so the model is done; a ToolCall with `error` for a malformed call,
    answered as an observation, never raised); `observation` writes a tool's output back for the model to read."""

    end: str

    def parse(self, text: str) -> ToolCall | None: ...

    def observation(self, output: str) -> str: ...
