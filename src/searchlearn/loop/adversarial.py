"""Reward from demonstrations, as a loop: a discriminator and the policy trained in turn (GAIL / AIRL).

Round r = 1..R: sample the *current* policy on fresh training problems (one engine call), pair each sample with an
expert trace of the same problem, take k BCE steps on the discriminator D (`reward/discriminator.py`); then a few GRPO
steps of the policy with reward f = logit D (+ w · verifier). That alternation is what makes it adversarial; it lives
here, beside the search-and-learn loop, because it drives both a reward model and a learner.
"""

from __future__ import annotations

import random
from typing import Callable

import torch

from searchlearn import progress
from searchlearn.learn.grpo import GRPOConfig, train_grpo
from searchlearn.reward.discriminator import (
    DiscriminatorConfig,
    DiscriminatorReward,
    discriminator_examples,
    imitation_reward,
)
from searchlearn.reward.models import (
    RewardModel,
    RewardTrainConfig,
    loss_of,
    train_reward,
)
from searchlearn.reward.quality import auc
from searchlearn.reward.verifiers import text_of
from searchlearn.types import SamplingParams


def adversarial_rounds(policy, task, cfg: DiscriminatorConfig, log: Callable[[dict], None] = lambda record: None,
                       model: RewardModel | None = None) -> tuple[RewardModel, list[dict]]:
    """GAIL/AIRL rounds: D trained on expert vs the current policy's samples, then the policy on D's logit.

    policy: a trainable policy (trained in place when cfg.policy_steps > 0); task: has problems/verify/steps/trace.
    model: a discriminator to continue (default: a fresh head on a copy of the policy's backbone).
    Returns (D, one record per round). Each record's `disc/auc_correct` is the AUC of D's score against correctness
    on that round's samples *before* D trains on them (held out from D so far).
    """
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
