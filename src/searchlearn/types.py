"""The records every stage shares: a searcher hands these to any learner, a reward scores them, a report plots them.

Plain dataclasses, no torch: they serialise to JSON (`dataclasses.asdict`) and travel between processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One task instance. `prompt` is what the policy sees; `data` is what the verifier needs (task-specific)."""

    id: str
    prompt: str
    data: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Verdict:
    """A verifier's judgement of one completion: `score` in [0, 1] and a human-readable `reason`."""

    score: float
    reason: str

    @property
    def correct(self) -> bool:
        return self.score >= 1.0


@dataclass
class SamplingParams:
    """How the engine samples. temperature 0 is greedy (deterministic); `seed` makes sampling reproducible."""

    n: int = 1  # samples per prompt
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()  # stop strings (kept in the output), e.g. the step delimiter "\n"
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class StepResult:
    """What an environment returns for one action (gym's step): the observation to append to the context (written
    by the environment, never trained on), the reward of this step, whether the episode is over, and extras."""

    observation: str
    reward: float = 0.0
    done: bool = False
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ToolCall:
    """A tool call parsed from model text: the tool's name and its arguments by parameter name (positional
    arguments, as a tag protocol writes them, under "0", "1", ...); `error` instead when the text was not a call."""

    name: str = ""
    arguments: dict = field(default_factory=dict)
    error: str = ""


@dataclass
class Completion:
    """One sampled continuation of one prompt.

    `finish_reason` is "eos", "stop" (a stop string was produced; it is kept in `text`) or "length".
    `logprobs[i]` is log π(token_ids[i] | prefix) under the sampling distribution's model (before temperature).
    """

    prompt_index: int
    token_ids: list[int]
    text: str
    logprobs: list[float]
    finish_reason: str
    mask: list[bool] | None = None  # per token: False = an environment's observation (multi-turn), never trained on

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


@dataclass
class Step:
    """One reasoning step: the text up to and including the step delimiter."""

    text: str
    num_tokens: int = 0
    logprob: float = 0.0  # sum of token logprobs: the step's prior under the policy
    score: float | None = None  # process reward, when a scorer has seen it


def join_masks(parts: list[tuple[list[bool] | None, int]]) -> list[bool] | None:
    """The mask of token runs laid end to end, each (its mask or None for all-model tokens, its length); None when
    no run has a mask (the model wrote every token)."""
    if all(mask is None for mask, _ in parts):
        return None
    return [m for mask, n in parts for m in (mask if mask is not None else [True] * n)]


@dataclass
class Trajectory:
    """A full attempt at a problem: what a searcher returns and a learner consumes."""

    problem_id: str
    prompt: str
    completion: str
    steps: list[Step] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    reward: float | None = None
    correct: bool | None = None
    mask: list[bool] | None = None  # per token of token_ids: False = written by an environment (never trained on)


@dataclass
class Ledger:
    """Compute spent by a search or a training round. Every scaling curve's x-axis comes from here.

    FLOPs are estimated as 2·N per token (forward pass, N = non-embedding parameters), after Kaplan et al. 2020.
    """

    generated_tokens: int = 0
    prefilled_tokens: int = 0
    reward_tokens: int = 0
    policy_flops: float = 0.0
    reward_flops: float = 0.0

    def add(self, other: Ledger) -> Ledger:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def charge_policy(self, generated: int, prefilled: int, n_params: int) -> None:
        self.generated_tokens += generated
        self.prefilled_tokens += prefilled
        self.policy_flops += 2.0 * n_params * (generated + prefilled)

    def charge_reward(self, tokens: int, n_params: int) -> None:
        self.reward_tokens += tokens
        self.reward_flops += 2.0 * n_params * tokens

    def copy(self) -> Ledger:
        return Ledger().add(self)

    def since(self, before: Ledger) -> Ledger:
        """What was spent after the snapshot `before` (self − before), as a new ledger."""
        return Ledger(**{name: getattr(self, name) - getattr(before, name) for name in self.__dataclass_fields__})

    def scaled(self, factor: float) -> Ledger:
        """A share of this ledger (e.g. one problem's part of a batched call), as a new ledger."""
        return Ledger(**{name: getattr(self, name) * factor for name in self.__dataclass_fields__})


@dataclass
class Node:
    """A node of a search tree: one step, with the statistics MCTS and beam search keep."""

    step: Step
    parent: int | None = None  # index into SearchTree.nodes
    children: list[int] = field(default_factory=list)
    prior: float = 0.0  # policy logprob of the step
    visits: int = 0
    value_sum: float = 0.0
    terminal: bool = False
    prior_prob: float = 0.0  # P(s, a) of PUCT: the share of the parent's k samples that drew this step
    count: int = 1  # identical sibling samples merged into this node
    token_ids: list[int] = field(default_factory=list)  # the step's tokens as the engine produced them (no eos)
    logprobs: list[float] = field(default_factory=list)  # log π of each of those tokens
    finish: str = ""  # the engine's finish_reason for the step ("stop", "eos", "length"), "" for the root
    group: int = 0  # independent subtree (DVTS) the node belongs to
    mask: list[bool] | None = None  # per token of token_ids: False = an environment's observation (None: all model's)

    @property
    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0


@dataclass
class SearchTree:
    """All steps a search generated for one problem; node 0 is the root (the prompt, an empty step)."""

    problem_id: str
    nodes: list[Node] = field(default_factory=lambda: [Node(Step(""))])

    def add(self, parent: int, step: Step, prior: float = 0.0) -> int:
        self.nodes.append(Node(step=step, parent=parent, prior=prior))
        index = len(self.nodes) - 1
        self.nodes[parent].children.append(index)
        return index

    def path(self, index: int) -> list[int]:
        """Node indices from the root's first child down to `index`."""
        out = []
        while index != 0:
            out.append(index)
            index = self.nodes[index].parent
        return out[::-1]

    def text(self, index: int) -> str:
        return "".join(self.nodes[i].step.text for i in self.path(index))

    def steps(self, index: int) -> list[Step]:
        """The steps from the root down to `index`, leaving out empty ones (an end-of-sequence node has no text)."""
        return [self.nodes[i].step for i in self.path(index) if self.nodes[i].step.text]

    def token_ids(self, index: int) -> list[int]:
        return [t for i in self.path(index) for t in self.nodes[i].token_ids]

    def logprobs(self, index: int) -> list[float]:
        return [lp for i in self.path(index) for lp in self.nodes[i].logprobs]

    def mask(self, index: int) -> list[bool] | None:
        """Per token of `token_ids(index)`: False where an environment wrote it; None when the model wrote them all."""
        nodes = [self.nodes[i] for i in self.path(index)]
        return join_masks([(n.mask, len(n.token_ids)) for n in nodes])

    def num_tokens(self, index: int) -> int:
        """Generated tokens on the path to `index` (an ending eos included)."""
        return sum(self.nodes[i].step.num_tokens for i in self.path(index))

    def terminals(self) -> list[int]:
        return [i for i, node in enumerate(self.nodes) if node.terminal]

    @classmethod
    def from_dict(cls, data: dict) -> SearchTree:
        """The inverse of `dataclasses.asdict(tree)` (a tree read back from JSON)."""
        nodes = [Node(**{**n, "step": Step(**n["step"])}) for n in data["nodes"]]
        return cls(data["problem_id"], nodes)


@dataclass
class SearchResult:
    """What a searcher returns for one problem: its chosen answer, the tree, every finished attempt, and the cost."""

    problem_id: str
    answer: str | None
    trajectories: list[Trajectory]
    ledger: Ledger
    tree: SearchTree | None = None
