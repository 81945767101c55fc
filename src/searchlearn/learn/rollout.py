"""Rollouts for online RL: sample completions through the engine, score them, lay them out as training tensors.

Shared by the GRPO-family trainer (`grpo.py`) and PPO (`ppo.py`). Sequences are prompt + completion, right-padded;
a completion that ended with EOS keeps the EOS as its last action, so the policy is also trained on when to stop.
Log-probabilities are in the shifted frame of `sequence_logprobs`: column t scores token t+1, so `action_mask`
(B, T−1) is 1 on the columns that score completion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from searchlearn.contracts import Environment, OutcomeReward
from searchlearn.distributed.shard import map_problems
from searchlearn.env.rollout import sample_episodes
from searchlearn.learn.trainer import TrainConfig
from searchlearn.learn.tree_rollout import TreeShape, sample_trees
from searchlearn.policy.model import sequence_logprobs
from searchlearn.types import Completion, Ledger, Problem, SamplingParams


@dataclass
class RolloutConfig(TrainConfig):
    """What every online learner (GRPO family, PPO) shares: how rollouts are sampled and how often they are reused."""

    prompts_per_step: int = 16  # N training problems per rollout
    group_size: int = 8  # G completions per problem
    temperature: float = 1.0  # sampling temperature of the rollouts
    top_p: float = 1.0  # nucleus mass of the rollouts
    max_new_tokens: int = 128  # completion cap while sampling (L_max)
    epochs: int = 1  # μ passes over each rollout
    minibatch_size: int = 0  # sequences per optimizer step (0 = the whole rollout: one update per epoch)
    beta: float = 0.0  # KL coefficient to the frozen reference (0 = no reference model is loaded)
    shaping: float = 0.0  # α of potential-based shaping with the phase's process scorer (0 = outcome reward only)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prompts_per_step < 1 or self.group_size < 1 or self.epochs < 1 or self.max_new_tokens < 1:
            raise ValueError("prompts_per_step, group_size, epochs, max_new_tokens must be >= 1")
        if not 0 <= self.shaping <= 1:
            raise ValueError("shaping (the potential's weight α) must be in [0, 1]")
        if self.minibatch_size < 0 or self.beta < 0 or self.temperature <= 0:
            raise ValueError("minibatch_size, beta >= 0 and temperature > 0 (RL samples; greedy rollouts have no "
                             "groups)")

    def sampling(self, step: int, draw: int = 0) -> SamplingParams:
        """The sampling of step `step`'s `draw`-th rollout: seeded by (seed, step, draw), never by the process."""
        return SamplingParams(n=self.group_size, temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens, seed=self.seed * 1_000_003 + step * 101 + draw)


@dataclass
class Batch:
    """Token tensors of B sequences: input_ids, attention_mask (B, T); action_mask (B, T−1) on completion tokens."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    action_mask: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def rows(self, index: torch.Tensor | Sequence[int]) -> Batch:
        """The sub-batch of rows `index`, trimmed to its own longest sequence."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.input_ids.device)
        attention = self.attention_mask[index]
        width = int(attention.sum(-1).max().item())
        return Batch(self.input_ids[index, :width], attention[:, :width], self.action_mask[index, : width - 1])

    def to(self, device) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.action_mask.to(device))


def completion_ids(completion: Completion, eos_id: int) -> list[int]:
    """The completion's tokens as actions: the sampled tokens, plus the EOS the engine stopped at (not returned)."""
    return list(completion.token_ids) + ([eos_id] if completion.finish_reason == "eos" else [])


def completion_mask(completion: Completion) -> list[bool] | None:
    """Which of `completion_ids` the model chose (None: all of them); an environment's observations are False."""
    if completion.mask is None:
        return None
    return list(completion.mask) + ([True] if completion.finish_reason == "eos" else [])


def make_batch(prompt_ids: Sequence[list[int]], completion_ids_: Sequence[list[int]], pad_id: int,
               masks: Sequence[list[bool] | None] | None = None) -> Batch:
    """Right-padded prompt + completion sequences with their masks; `masks` (per completion token, None = all)
    zero the action mask on tokens the model did not choose (an environment's observations)."""
    seqs = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids_)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    actions = torch.zeros((len(seqs), width - 1), dtype=torch.float32)
    for i, (p, s) in enumerate(zip(prompt_ids, seqs)):
        ids[i, : len(s)] = torch.tensor(s)
        attention[i, : len(s)] = 1
        actions[i, len(p) - 1 : len(s) - 1] = 1.0  # column t scores token t+1: the completion's tokens
        if masks is not None and masks[i] is not None:
            actions[i, len(p) - 1 : len(s) - 1] *= torch.tensor(masks[i], dtype=torch.float32)
    return Batch(ids, attention, actions)


def token_logprobs(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """log π(token_{t+1} | prefix) for every column, (B, T−1), float32; 0 where the target is padding."""
    return sequence_logprobs(model, batch.input_ids, batch.attention_mask)


def sorted_token_logprobs(model: torch.nn.Module, batch: Batch, chunks: int) -> torch.Tensor:
    """`token_logprobs` computed on `chunks` groups of rows of similar length, each trimmed to its own longest
    sequence, then put back in row order, (B, T−1). The same values (and gradients) as one padded forward, with less
    compute spent on padding: rollouts end at very different lengths."""
    lengths = batch.attention_mask.sum(-1)  # (B,)
    order = torch.argsort(lengths, descending=True)
    width = batch.action_mask.shape[1]
    parts = []
    for index in torch.tensor_split(order, min(chunks, len(batch))):
        logp = token_logprobs(model, batch.rows(index))  # (b, w_chunk)
        parts.append(torch.nn.functional.pad(logp, (0, width - logp.shape[1])))
    return torch.cat(parts)[torch.argsort(order)]  # back to row order


@torch.no_grad()
def frozen_logprobs(model: torch.nn.Module, batch: Batch, chunk: int = 64) -> torch.Tensor:
    """`token_logprobs` without gradients, in chunks of rows (for π_old and π_ref), (B, T−1)."""
    out = torch.zeros(batch.action_mask.shape, dtype=torch.float32, device=batch.input_ids.device)
    for start in range(0, len(batch), chunk):
        sub = batch.rows(range(start, min(start + chunk, len(batch))))
        out[start : start + len(sub), : sub.action_mask.shape[1]] = token_logprobs(model, sub)
    return out


@dataclass
class Rollout:
    """One round of sampling: N problems × G completions (prompt-major), their scores and token ids.

    `rewards` starts as the scores and may be shaped (e.g. the DAPO overlong penalty); `batch` is built on demand.
    """

    problems: list[Problem]  # the N problems
    completions: list[Completion]  # N·G, prompt-major
    prompt_ids: list[list[int]]  # N·G: each row's prompt tokens (BOS included)
    action_ids: list[list[int]]  # N·G: each row's completion tokens as actions (EOS included when sampled)
    scores: torch.Tensor  # (N, G) the reward function's scores (None counted as 0)
    rewards: torch.Tensor  # (N, G) the rewards the learner uses
    ledger: Ledger = field(default_factory=Ledger)
    unscored: int = 0  # completions the reward function returned None for
    pad_id: int = 0
    action_masks: list[list[bool] | None] | None = None  # N·G: which action tokens the model chose (None: all)
    _batch: Batch | None = field(default=None, repr=False)

    @property
    def group_size(self) -> int:
        return self.scores.shape[1]

    @property
    def batch(self) -> Batch:
        if self._batch is None:
            self._batch = make_batch(self.prompt_ids, self.action_ids, self.pad_id, self.action_masks)
        return self._batch

    def lengths(self) -> torch.Tensor:
        """(N, G) completion lengths in sampled tokens (EOS not counted)."""
        return torch.tensor([c.num_tokens for c in self.completions], dtype=torch.float32).view(self.scores.shape)

    def select_groups(self, keep: torch.Tensor) -> Rollout:
        """The rollout restricted to the groups where `keep` (N,) bool is True."""
        groups = torch.nonzero(keep).flatten().tolist()
        G = self.group_size
        rows = [g * G + j for g in groups for j in range(G)]
        return Rollout([self.problems[g] for g in groups], [self.completions[r] for r in rows],
                       [self.prompt_ids[r] for r in rows], [self.action_ids[r] for r in rows], self.scores[groups],
                       self.rewards[groups], self.ledger, self.unscored, self.pad_id,
                       None if self.action_masks is None else [self.action_masks[r] for r in rows])


def concat_rollouts(parts: Sequence[Rollout]) -> Rollout:
    """One rollout of every group of `parts` (same group size), ledgers summed."""
    ledger = Ledger()
    for part in parts:
        ledger.add(part.ledger)
    return Rollout([p for r in parts for p in r.problems], [c for r in parts for c in r.completions],
                   [x for r in parts for x in r.prompt_ids], [x for r in parts for x in r.action_ids],
                   torch.cat([r.scores for r in parts]), torch.cat([r.rewards for r in parts]), ledger,
                   sum(r.unscored for r in parts), parts[0].pad_id,
                   None if all(r.action_masks is None for r in parts) else
                   [m for r in parts for m in (r.action_masks or [None] * len(r.action_ids))])


def sample_completions(problems: Sequence[Problem], policy, params: SamplingParams,
                       environment: Callable[[], Environment] | None = None) -> list[list[Completion]]:
    """params.n completions of each problem, one list per problem, from one batched engine call; with an
    `environment` factory, multi-turn episodes (env/rollout.py, one engine call per turn) as masked completions."""
    if environment is not None:
        completions = sample_episodes(policy, problems, environment, params)
        return [completions[i * params.n : (i + 1) * params.n] for i in range(len(problems))]
    completions = policy.generate([p.prompt for p in problems], params)
    return [completions[i * params.n : (i + 1) * params.n] for i in range(len(problems))]


def sample_rollout(policy, problems: Sequence[Problem], reward: OutcomeReward, params: SamplingParams,
                   environment: Callable[[], Environment] | None = None, tree: TreeShape | None = None) -> Rollout:
    """params.n completions of each problem in one batched engine call (one per worker with a pool active,
    distributed/shard.py), scored by the outcome reward; through `environment` when given (multi-turn); with a `tree`
    shape, tree.leaves completions per problem, params.n = tree.roots of them chains and the rest branches
    (tree_rollout.py)."""
    before = policy.ledger.copy()
    if tree is not None:  # with an environment, chains and branches are episodes (env/tool_policy.py)
        groups, G = map_problems(sample_trees, problems, policy, params, tree, environment), tree.leaves
    else:
        groups, G = map_problems(sample_completions, problems, policy, params, environment), params.n
    completions = [c for group in groups for c in group]
    for row, c in enumerate(completions):
        c.prompt_index = row // G  # a worker numbers its own shard's prompts
    spent = policy.ledger.since(before)
    scored = reward([problems[c.prompt_index] for c in completions], completions)
    scores = torch.tensor([0.0 if s is None else float(s) for s in scored]).view(len(problems), G)  # (N, G)
    prompt_ids = policy.encode_prompts([p.prompt for p in problems])
    eos = policy.tokenizer.eos_id
    return Rollout(list(problems), completions, [prompt_ids[c.prompt_index] for c in completions],
                   [completion_ids(c, eos) for c in completions], scores, scores.clone(), spent,
                   sum(s is None for s in scored), policy.tokenizer.pad_id,
                   None if environment is None else [completion_mask(c) for c in completions])


def step_end_tokens(token_ids: Sequence[int], steps: Sequence[str], decode: Callable[[list[int]], str]) -> list[int]:
    """The index (into `token_ids`) of the token that ends each step: the first token whose decoded prefix covers the
    step's last character. `steps` are the completion's step texts in order (as `task.steps` splits it)."""
    ends = np.cumsum([len(decode([t])) for t in token_ids])  # char offset after each token
    out, char_end = [], 0
    for text in steps:
        char_end += len(text)
        out.append(min(int(np.searchsorted(ends, char_end)), max(0, len(ends) - 1)))
    return out


def step_rewards(rollout: Rollout, scores: Sequence[Sequence[float]], steps: Sequence[Sequence[str]],
                 decode: Callable[[list[int]], str]) -> torch.Tensor:
    """Dense rewards from per-step scores (a PRM, or shaping terms): each step's score on the token that ends it.

    scores[r][k] belongs to steps[r][k], the k-th step text of row r's completion (as `task.steps` splits it).
    Returns (B, T−1) on the action columns of `rollout.batch`, for PPO's `dense_reward` (or any token-level learner).
    """
    out = torch.zeros(rollout.batch.action_mask.shape, dtype=torch.float32)
    for r, (completion, row_scores, row_steps) in enumerate(zip(rollout.completions, scores, steps)):
        first = len(rollout.prompt_ids[r]) - 1  # the column scoring the first completion token
        for score, token in zip(row_scores, step_end_tokens(completion.token_ids, row_steps, decode)):
            out[r, first + token] += float(score)
    return out
