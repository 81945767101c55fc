"""Reward from demonstrations: a discriminator between expert traces and policy samples, trained adversarially.

GAIL (Ho & Ermon 2016, "Generative Adversarial Imitation Learning") trains a discriminator D to tell expert
demonstrations from the policy's samples and the policy to fool it; AIRL (Fu et al. 2018, "Learning Robust Rewards
with Adversarial Inverse Reinforcement Learning") reads the reward off the discriminator as

    r = log D − log(1 − D),   which for D = σ(f) is exactly the logit f.

Here a sample is a whole solution (prompt + completion), the expert is the task's solver (`task.trace`), and D is a
`RewardModel` head of kind "orm" on a copy of the policy's backbone, trained with the ORM's binary cross-entropy
(`models.train_reward`; label 1 = expert, 0 = policy) at the solution's last step end. So `LearnedScorer` and
`searchlearn reward eval` read a saved discriminator like any ORM (its score there is D itself, monotone in r).

`loop.adversarial.adversarial_rounds` alternates D's training with GRPO steps of the policy against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from searchlearn.reward.learned import LearnedScorer
from searchlearn.reward.models import Example, RewardModel, encode_steps
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.types import Problem


def _lines(text: str) -> list[str]:
    """Newline-delimited steps, each keeping its '\\n' (the default step format, as Countdown's `steps`)."""
    pieces = text.split("\n")
    return [p + "\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def discriminator_examples(tokenizer, problems: Sequence[Problem], expert_texts: Sequence[str],
                           policy_texts: Sequence[str], steps: Callable[[str], list[str]] = _lines,
                           max_length: int | None = None) -> list[Example]:
    """Row i gives two examples on problems[i]: expert_texts[i] labelled 1.0 and policy_texts[i] labelled 0.0, each at
    its last step's last token (encoded step by step, as `LearnedScorer` reads them). Texts with no steps are skipped;
    sequences longer than `max_length` are cut and labelled at their last kept token."""
    if not len(problems) == len(expert_texts) == len(policy_texts):
        raise ValueError(f"{len(problems)} problems, {len(expert_texts)} expert and {len(policy_texts)} policy texts")
    out = []
    for p, expert, sample in zip(problems, expert_texts, policy_texts):
        for text, target in ((expert, 1.0), (sample, 0.0)):
            pieces = [s for s in steps(text) if s]
            if not pieces:
                continue
            ids, _ = encode_steps(tokenizer, p.prompt, pieces)
            ids = ids[:max_length] if max_length else ids
            out.append(Example(ids, [len(ids) - 1], [target]))
    return out


class _LogitView(nn.Module):
    """A RewardModel whose `probability` is the identity, so `LearnedScorer` reads the raw logit f of D = σ(f)."""

    def __init__(self, model: RewardModel):
        super().__init__()
        self.inner = model
        self.config = model.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                starts: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(input_ids, attention_mask, starts)  # (B, T)

    def probability(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    @property
    def n_params(self) -> int:
        return self.inner.n_params


class DiscriminatorReward(LearnedScorer):
    """The AIRL/GAIL reward of a discriminator D = σ(f) (Fu et al. 2018; Ho & Ermon 2016).

    `.outcome(problems, completions)`: r = log D − log(1 − D) = f at the solution's last step end; None for a
    completion with no steps. Process form `(problems, prefixes) -> list[list[float]]`: f at every step end (the head
    read on each step prefix). Never raises on model text (unknown characters become <unk>); reward tokens go to
    `self.ledger`.
    """

    def __init__(self, model: RewardModel, tokenizer, task, batch_size: int = 64):
        super().__init__(_LogitView(model), tokenizer, task, how="last", batch_size=batch_size)


def imitation_reward(disc: DiscriminatorReward, task, verifier_weight: float = 0.0) -> Callable[[Sequence, Sequence],
                                                                                              list[float]]:
    """Outcome reward for the policy step: f + w · verifier. A completion D cannot score (no steps) gets the lowest
    score of its batch, not GRPO's 0 for None — else an empty answer would beat samples D scores below 0."""
    verifier = VerifierReward(task)

    def reward(problems: Sequence[Problem], completions: Sequence) -> list[float]:
        f = disc.outcome(problems, completions)
        floor = min((v for v in f if v is not None), default=0.0)
        v = verifier(problems, completions) if verifier_weight else [0.0] * len(f)
        return [(floor if a is None else a) + verifier_weight * b for a, b in zip(f, v)]

    return reward


@dataclass
class DiscriminatorConfig:
    rounds: int = 3  # adversarial rounds R (each: D update, then policy update)
    problems: int = 32  # fresh training problems per round
    samples: int = 2  # policy samples per problem per round (each paired with one expert trace)
    d_steps: int = 20  # discriminator AdamW steps per round (k)
    d_batch_size: int = 16  # examples per discriminator step
    d_lr: float = 3e-4  # discriminator learning rate
    policy_steps: int = 2  # GRPO steps per round against D (0 = train D only; the policy stays fixed)
    prompts_per_step: int = 8  # GRPO problems per step (drawn from the round's problems)
    group_size: int = 4  # GRPO samples per problem
    policy_lr: float = 1e-5  # GRPO learning rate
    verifier_weight: float = 0.0  # w in the policy's reward f + w · verifier (0 = pure imitation)
    max_new_tokens: int = 128  # completion cap while sampling
    temperature: float = 1.0  # sampling temperature (policy samples and GRPO rollouts)
    seed: int = 0  # seeds problems, sampling, expert traces and batch order

    def __post_init__(self) -> None:
        if min(self.rounds, self.problems, self.samples, self.d_steps, self.d_batch_size, self.prompts_per_step,
               self.group_size, self.max_new_tokens) < 1:
            raise ValueError("rounds, problems, samples, d_steps, d_batch_size, prompts_per_step, group_size, "
                             "max_new_tokens >= 1")
        if self.policy_steps < 0 or self.verifier_weight < 0 or self.d_lr <= 0 or self.policy_lr <= 0:
            raise ValueError("policy_steps, verifier_weight >= 0; d_lr, policy_lr > 0")
        if self.temperature <= 0:
            raise ValueError("temperature > 0 (the policy step needs sampled groups)")
