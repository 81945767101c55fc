"""Online RL without a critic: the GRPO family (GRPO, Dr. GRPO, DAPO) and RLOO / REINFORCE++.

Each step: sample G completions of N training problems in one batched engine call, score them with an outcome reward,
turn the (N, G) rewards into advantages with the advantage function the caller hands in, then run μ epochs of
minibatch updates with the loss function the caller hands in (both are plain functions from `advantages.py` and
`losses.py`; `recipe(name, cfg)` pairs them for configs). A frozen reference model is loaded only when β > 0.

The sampling seed, the problems and the minibatch order are pure functions of (cfg.seed, step), and checkpoints carry
the optimizer, the RNG state and the reference weights, so a killed run resumed from its last checkpoint redoes
exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import torch

from searchlearn import progress
from searchlearn.learn import checkpoint
from searchlearn.learn.advantages import (
    dapo_dynamic_sampling_mask,
    dr_grpo_advantages,
    grpo_advantages,
    overlong_penalty,
    reinforce_pp_advantages,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
)
from searchlearn.learn.losses import dapo_loss, dr_grpo_loss, grpo_loss, reinforce_pp_loss, rloo_loss
from searchlearn.learn.rollout import (
    OutcomeReward,
    Rollout,
    concat_rollouts,
    cosine_lr,
    frozen_logprobs,
    minibatches,
    problem_indices,
    sample_rollout,
    sorted_token_logprobs,
)
from searchlearn.learn.sft import make_optimizer
from searchlearn.policy.model import LlamaForCausalLM
from searchlearn.types import Problem, SamplingParams

REFERENCE_DIR = "reference"  # the frozen reference's weights, inside each checkpoint when β > 0


@dataclass
class GRPOConfig:
    steps: int = 100  # RL steps, each one rollout and its updates
    prompts_per_step: int = 16  # N training problems per rollout
    group_size: int = 8  # G completions per problem
    temperature: float = 1.0  # sampling temperature of the rollouts
    top_p: float = 1.0  # nucleus mass of the rollouts
    max_new_tokens: int = 128  # completion cap while sampling (L_max)
    epochs: int = 1  # μ passes over each rollout
    minibatch_size: int = 0  # sequences per optimizer step (0 = the whole rollout: one update per epoch)
    lr: float = 1e-5  # peak learning rate
    min_lr_ratio: float = 1.0  # cosine floor as a fraction of lr (1 = constant after warm-up)
    warmup_steps: int = 0  # linear warm-up, in RL steps
    weight_decay: float = 0.0  # AdamW decay on matrices
    betas: tuple[float, float] = (0.9, 0.99)  # AdamW betas
    grad_clip: float = 1.0  # max global grad norm (0 = off)
    beta: float = 0.0  # KL coefficient to the frozen reference (0 = no reference model is loaded)
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal, refill from fresh problems
    max_sampling_rounds: int = 3  # DAPO refill: most rollouts drawn in one step to fill the N groups
    overlong_buffer: int = 0  # DAPO soft overlong penalty width L_cache in tokens (0 = off)
    overlong_factor: float = 1.0  # scale of the overlong penalty
    checkpoint_every: int = 0  # steps between checkpoints (0 = only at the end)
    log_every: int = 1  # steps between logged records
    length_chunks: int = 4  # a minibatch's forward runs on this many groups of rows of similar length (less padding)
    seed: int = 0  # seeds the problem order, the sampling and the minibatch order

    def __post_init__(self) -> None:
        if self.steps < 0 or self.prompts_per_step < 1 or self.group_size < 1 or self.epochs < 1:
            raise ValueError("steps >= 0; prompts_per_step, group_size, epochs >= 1")
        if self.max_new_tokens < 1 or self.minibatch_size < 0 or self.log_every < 1 or self.checkpoint_every < 0:
            raise ValueError("max_new_tokens, log_every >= 1; minibatch_size, checkpoint_every >= 0")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            raise ValueError("lr > 0, min_lr_ratio in [0, 1], warmup_steps >= 0")
        if self.beta < 0 or self.grad_clip < 0 or self.temperature <= 0:
            raise ValueError("beta, grad_clip >= 0 and temperature > 0 (RL samples; greedy rollouts have no groups)")
        if not 0 <= self.overlong_buffer <= self.max_new_tokens or self.max_sampling_rounds < 1:
            raise ValueError("overlong_buffer in [0, max_new_tokens]; max_sampling_rounds >= 1")
        if self.length_chunks < 1:
            raise ValueError("length_chunks must be >= 1")


@dataclass(frozen=True)
class Recipe:
    """An advantage function and a loss function that belong together."""

    advantage_fn: Callable[[torch.Tensor], torch.Tensor]  # (N, G) rewards -> (N, G) advantages
    loss_fn: Callable  # the losses.py GRPO-family signature


def recipe(name: str, cfg: GRPOConfig) -> Recipe:
    """Named pairings for configs and the CLI (the trainer itself only ever receives functions).

    DAPO's two sampling-side parts are config switches: `dynamic_sampling` and `overlong_buffer`.
    """
    table = {
        "grpo": lambda: Recipe(grpo_advantages, grpo_loss),
        "dr_grpo": lambda: Recipe(dr_grpo_advantages, partial(dr_grpo_loss, max_tokens=cfg.max_new_tokens + 1)),
        "dapo": lambda: Recipe(grpo_advantages, dapo_loss),
        "rloo": lambda: Recipe(rloo_advantages, rloo_loss),
        "reinforce_pp": lambda: Recipe(reinforce_pp_advantages, reinforce_pp_loss),
        "reinforce_pp_baseline": lambda: Recipe(reinforce_pp_baseline_advantages, reinforce_pp_loss),
    }
    if name not in table:
        raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(table)}")
    return table[name]()


def collect(policy, problems: Sequence[Problem], step: int, cfg: GRPOConfig, reward: OutcomeReward
            ) -> tuple[Rollout, dict]:
    """Step `step`'s rollout: N problems × G samples, shaped rewards, and (DAPO) only informative groups.

    With dynamic sampling, groups whose rewards are all equal are dropped and further batches of fresh problems are
    sampled (at most cfg.max_sampling_rounds in all) until N groups are kept; surplus groups are cut.
    """
    parts, scores, lengths, kept_groups = [], [], [], 0
    for draw in range(cfg.max_sampling_rounds if cfg.dynamic_sampling else 1):
        seed = cfg.seed * 1_000_003 + step * 101 + draw
        index = problem_indices(len(problems), step, cfg.prompts_per_step, cfg.seed if draw == 0 else seed)
        params = SamplingParams(n=cfg.group_size, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, seed=seed)
        part = sample_rollout(policy, [problems[i] for i in index], reward, params)
        scores.append(part.scores.flatten())
        lengths.append(part.lengths().flatten())
        if cfg.overlong_buffer:
            penalty = overlong_penalty(lengths[-1], cfg.max_new_tokens, cfg.overlong_buffer, cfg.overlong_factor)
            part.rewards = part.rewards + penalty.view_as(part.rewards)  # (N, G)
        if cfg.dynamic_sampling:
            part = part.select_groups(dapo_dynamic_sampling_mask(part.rewards))
            kept_groups += len(part.problems)
        parts.append(part)
        if kept_groups >= cfg.prompts_per_step:
            break
    rollout = concat_rollouts(parts)
    if len(rollout.problems) > cfg.prompts_per_step:
        rollout = rollout.select_groups(torch.arange(len(rollout.problems)) < cfg.prompts_per_step)
    scores_, lengths_ = torch.cat(scores), torch.cat(lengths)
    stats = {"learn/reward": rollout.rewards.mean().item() if rollout.problems else float("nan"),
             "learn/solved": (scores_ >= 1).float().mean().item(), "learn/score": scores_.mean().item(),
             "learn/completion_tokens": lengths_.mean().item(), "learn/groups": len(rollout.problems),
             "learn/groups_drawn": len(scores_) // cfg.group_size, "learn/unscored": rollout.unscored,
             "ledger/generated_tokens": rollout.ledger.generated_tokens}
    return rollout, stats


def update(model: torch.nn.Module, optimizer: torch.optim.Optimizer, rollout: Rollout, advantages: torch.Tensor,
           cfg: GRPOConfig, loss_fn: Callable, step: int, reference: torch.nn.Module | None = None) -> dict:
    """μ epochs of minibatch updates on one rollout; returns the mean of each loss statistic and the grad norm.

    advantages: (B,) per sequence or (B, T−1) per token, rows as in `rollout.batch`. π_old is the policy before this
    update: when there is one minibatch and one epoch, that is the current policy's own detached log-probabilities.
    """
    batch = rollout.batch
    B = len(batch)
    plan = [minibatches(B, cfg.minibatch_size, cfg.seed, step, e) for e in range(cfg.epochs)]
    on_policy = len(plan) == 1 and len(plan[0]) == 1
    was_training = model.training
    model.train()
    logp_old = None if on_policy else frozen_logprobs(model, batch)  # (B, T−1)
    logp_ref = frozen_logprobs(reference, batch) if reference is not None and cfg.beta > 0 else None
    sums: dict[str, float] = {}
    n_updates = 0
    for epoch_plan in plan:
        for index in epoch_plan:
            sub = batch.rows(index)
            width = sub.action_mask.shape[1]
            logp = sorted_token_logprobs(model, sub, cfg.length_chunks)  # (b, w)
            old = logp.detach() if logp_old is None else logp_old[index, :width]
            ref = None if logp_ref is None else logp_ref[index, :width]
            adv = advantages[index] if advantages.dim() == 1 else advantages[index, :width]
            loss, stats = loss_fn(logp, old, adv, sub.action_mask, logp_ref=ref, beta=cfg.beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
            optimizer.step()
            n_updates += 1
            for k, v in {**stats, "grad_norm": float(grad_norm)}.items():
                sums[k] = sums.get(k, 0.0) + float(v)
    model.train(was_training)
    return {k: v / max(1, n_updates) for k, v in sums.items()} | {"updates": n_updates}


def train_grpo(
    policy,
    problems: Sequence[Problem],
    cfg: GRPOConfig,
    reward: OutcomeReward,
    advantage_fn: Callable[[torch.Tensor], torch.Tensor] = grpo_advantages,
    loss_fn: Callable = grpo_loss,
    reference: torch.nn.Module | None = None,
    ckpt_dir: str | Path | None = None,
    log: Callable[[dict], None] = lambda record: None,
    stop_after: int | None = None,
    name: str = "grpo",
) -> dict:
    """Train `policy.model` in place for cfg.steps RL steps on `problems`; resume from `ckpt_dir` if one is there.

    policy: a LocalPolicy (its engine samples from the model being trained). reward: outcome contract, e.g.
    `VerifierReward(task)`. reference: the frozen π_ref for β > 0 (default: a copy of the policy at step 0, saved in
    the checkpoint). `stop_after` ends the call after that many steps (a stand-in for a kill, used by tests).
    Returns {"steps", "seconds", "last": the last logged record}.
    """
    if not problems:
        raise ValueError(f"{name}: no training problems")
    model = policy.model
    optimizer = make_optimizer(model, cfg)
    step = 0
    if ckpt_dir is not None and checkpoint.exists(ckpt_dir):
        step, reference = _resume(model, optimizer, Path(ckpt_dir), cfg, reference)
        progress.say(f"{name}: resumed at step {step}/{cfg.steps} from {ckpt_dir}")
    if cfg.beta > 0 and reference is None:
        reference = copy.deepcopy(model)
    if reference is not None:
        reference.eval().requires_grad_(False)
    t0, last = time.time(), {}
    with progress.bar(name, total=cfg.steps) as bar:
        bar.advance(step)
        while step < cfg.steps and (stop_after is None or step < stop_after):
            lr = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            t_rollout = time.time()
            rollout, record = collect(policy, problems, step, cfg, reward)
            t_update = time.time()
            advantages = advantage_fn(rollout.rewards).flatten() if rollout.problems else torch.zeros(0)  # (B,)
            if bool(advantages.any()) or (cfg.beta > 0 and rollout.problems):
                stats = update(model, optimizer, rollout, advantages, cfg, loss_fn, step, reference)
            else:  # no group carries a learning signal: skip, rather than let Adam step on stale momentum
                stats = {"updates": 0}
            model.eval()
            step += 1
            bar.advance()
            record = {"phase": name, "step": step, **record, **{f"learn/{k}": v for k, v in stats.items()},
                      "learn/lr": lr, "time/rollout_s": t_update - t_rollout, "time/update_s": time.time() - t_update}
            if step % cfg.log_every == 0 or step == cfg.steps:
                log(record)
            last = record
            if ckpt_dir is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                _save(ckpt_dir, model, policy.tokenizer, optimizer, step, reference)
    if ckpt_dir is not None and (step == cfg.steps or stop_after is not None):
        _save(ckpt_dir, model, policy.tokenizer, optimizer, step, reference)
    model.eval()
    return {"steps": step, "seconds": time.time() - t0, "last": last}


class _WithReference:
    """Adapter for checkpoint.save: writes the policy, and the frozen reference under REFERENCE_DIR."""

    def __init__(self, model, reference):
        self.model, self.reference = model, reference

    def save_pretrained(self, directory: Path) -> None:
        self.model.save_pretrained(directory)
        if self.reference is not None:
            self.reference.save_pretrained(Path(directory) / REFERENCE_DIR)


def _save(ckpt_dir, model, tokenizer, optimizer, step: int, reference) -> None:
    checkpoint.save(ckpt_dir, _WithReference(model, reference), tokenizer, optimizer, step)


def _resume(model, optimizer, ckpt_dir: Path, cfg: GRPOConfig, reference):
    meta, state = checkpoint.load_state(ckpt_dir)
    model.load_state_dict(type(model).from_pretrained(ckpt_dir).state_dict())
    if state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    checkpoint.set_rng_state(state["rng"])
    if reference is None and cfg.beta > 0 and (ckpt_dir / REFERENCE_DIR).is_dir():
        reference = LlamaForCausalLM.from_pretrained(ckpt_dir / REFERENCE_DIR)
    return int(meta["step"]), reference
