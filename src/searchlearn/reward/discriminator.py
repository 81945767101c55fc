"""Reward from demonstrations: a discriminator between expert traces and policy samples, trained adversarially.

GAIL (Ho & Ermon 2016, "Generative Adversarial Imitation Learning") trains a discriminator D to tell expert
demonstrations from the policy's samples and the policy to fool it; AIRL (Fu et al. 2018, "Learning Robust Rewards
with Adversarial Inverse Reinforcement Learning") reads the reward off the discriminator as

    r = log D − log(1 − D),   which for D = σ(f) is exactly the logit f.

Here a sample is a whole solution (prompt + completion), the expert is the task's solver (`task.trace`), and D is a
`RewardModel` head of kind "orm" on a copy of the policy's backbone, trained with the ORM's binary cross-entropy
(`models.train_reward`; label 1 = expert, 0 = policy) at the solution's last step end. So `LearnedScorer` and
`searchlearn reward eval` read a saved discriminator like any ORM (its score there is D itself, monotone in r).

`adversarial_rounds`, round r = 1..R: sample the *current* policy on fresh training problems (one engine call), pair
each sample with an expert trace of the same problem, take k BCE steps on D; then a few GRPO steps of the policy with
reward f (+ w · verifier). That alternation is what makes it adversarial.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from searchlearn import progress
from searchlearn.reward.learned import LearnedScorer
from searchlearn.reward.models import Example, RewardModel, RewardTrainConfig, encode_steps, loss_of, train_reward
from searchlearn.reward.quality import auc
from searchlearn.reward.verifiers import VerifierReward, text_of
from searchlearn.types import Problem, SamplingParams


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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(input_ids, attention_mask)  # (B, T)

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


def adversarial_rounds(policy, task, cfg: DiscriminatorConfig, log: Callable[[dict], None] = lambda record: None,
                       model: RewardModel | None = None) -> tuple[RewardModel, list[dict]]:
    """GAIL/AIRL rounds: D trained on expert vs the current policy's samples, then the policy on D's logit.

    policy: a LocalPolicy (trained in place when cfg.policy_steps > 0); task: has problems/verify/steps/trace.
    model: a discriminator to continue (default: a fresh head on a copy of the policy's backbone).
    Returns (D, one record per round). Each record's `disc/auc_correct` is the AUC of D's score against correctness
    on that round's samples *before* D trains on them (held out from D so far).
    """
    from searchlearn.learn.grpo import GRPOConfig, train_grpo

    model = model or RewardModel(policy.model, "orm")
    disc = DiscriminatorReward(model, policy.tokenizer, task)
    pad_id = policy.tokenizer.pad_id
    max_len = policy.model.config.max_position_embeddings
    history = []
    for r in range(1, cfg.rounds + 1):
        seed = cfg.seed * 1000 + r
        problems = task.problems("train", cfg.problems, seed=seed)
        progress.say(f"disc round {r}/{cfg.rounds}: {cfg.samples} samples × {len(problems)} problems")
        params = SamplingParams(n=cfg.samples, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                                seed=seed)
        completions = policy.generate([p.prompt for p in problems], params)
        problem_of = [problems[c.prompt_index] for c in completions]
        texts = [text_of(c) for c in completions]
        rng = random.Random(seed)
        expert = [task.trace(p, rng) for p in problem_of]
        correct = [task.verify(p, t).correct for p, t in zip(problem_of, texts)]
        f_before = disc.outcome(problem_of, texts)
        data = discriminator_examples(policy.tokenizer, problem_of, expert, texts, task.steps, max_len)
        tcfg = RewardTrainConfig(steps=cfg.d_steps, batch_size=cfg.d_batch_size, lr=cfg.d_lr,
                                 warmup_steps=min(10, cfg.d_steps // 5), log_every=max(1, cfg.d_steps), seed=seed)
        d_stats = train_reward(model, data, tcfg, pad_id, name=f"disc{r}")
        with torch.no_grad():
            _, fit = loss_of(model, data, pad_id)
        record = {"phase": "disc", "round": r, "disc/loss": fit["loss"], "disc/accuracy": fit["accuracy"],
                  "disc/train_loss": d_stats["loss"], "disc/examples": len(data),
                  "disc/auc_correct": auc([-1e9 if v is None else v for v in f_before], [float(c) for c in correct]),
                  "policy/solved": sum(correct) / max(1, len(correct))}
        if cfg.policy_steps:
            gcfg = GRPOConfig(steps=cfg.policy_steps, prompts_per_step=min(cfg.prompts_per_step, len(problems)),
                              group_size=cfg.group_size, temperature=cfg.temperature,
                              max_new_tokens=cfg.max_new_tokens, lr=cfg.policy_lr, seed=seed)
            g = train_grpo(policy, problems, gcfg, imitation_reward(disc, task, cfg.verifier_weight), name=f"gail{r}")
            last = g["last"]
            record |= {"policy/reward": last.get("learn/reward"), "policy/grpo_solved": last.get("learn/solved"),
                       "policy/updates": last.get("learn/updates")}
        log(record)
        history.append(record)
    model.eval()
    return model, history
