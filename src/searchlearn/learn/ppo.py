"""PPO with a learned critic for LLM policies (Schulman et al. 2017; Ziegler et al. 2019; Ouyang et al. 2022).

Each step: sample completions, score them, build per-token rewards (the outcome reward at the last token, −β·k1 KL
to the frozen reference at every token, plus any dense per-step reward a PRM or shaping supplies), estimate
advantages with GAE from the critic's values, then run μ epochs of minibatch updates of the clipped surrogate and
the clipped value loss.

The critic is `policy.heads.ValueModel` (the policy's decoder, a copy or shared, under a scalar head). The optimizer,
schedule, clipping, checkpoints (policy, critic, reference) and exact resume are the shared `Trainer`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from searchlearn import progress
from searchlearn.contracts import OutcomeReward, TrainablePolicy
from searchlearn.distributed.ddp import (
    all_sum,
    all_sum_dict,
    gather,
    local_rows,
    my_rows,
    rank_world,
)
from searchlearn.distributed.shard import learner_ranks
from searchlearn.distributed.weights import to_arrays
from searchlearn.learn.advantages import gae, terminal_token_rewards, whiten
from searchlearn.learn.data import minibatches, problem_indices
from searchlearn.learn.losses import kl_k1, ppo_loss
from searchlearn.learn.rollout import (
    Batch,
    Rollout,
    RolloutConfig,
    frozen_logprobs,
    sample_rollout,
    token_logprobs,
)
from searchlearn.learn.trainer import Trainer
from searchlearn.policy.heads import ValueModel
from searchlearn.types import Problem


def action_values(critic: ValueModel, batch: Batch) -> torch.Tensor:
    """V(s_t) aligned with the log-probability columns: column t is the prefix through token t, (B, T−1)."""
    return critic(batch.input_ids, batch.attention_mask)[:, :-1]


@dataclass
class PPOConfig(RolloutConfig):
    prompts_per_step: int = 64  # N training problems per rollout
    group_size: int = 1  # completions per problem
    epochs: int = 2  # μ passes over each rollout
    critic_lr: float = 1e-4  # peak critic learning rate (same schedule as lr)
    gamma: float = 1.0  # discount γ per token
    lam: float = 0.95  # GAE λ
    clip_eps: float = 0.2  # PPO ratio clip ε
    value_clip_eps: float = 0.2  # value clip around the rollout's values (0 = off)
    value_coef: float = 0.5  # c_V, weight of the value loss
    whiten_advantages: bool = True  # normalise advantages over the rollout's tokens
    share_backbone: bool = False  # the critic reuses the policy's decoder instead of a copy

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.critic_lr <= 0 or not 0 <= self.gamma <= 1 or not 0 <= self.lam <= 1 or self.clip_eps <= 0:
            raise ValueError("critic_lr, clip_eps > 0; gamma, lam in [0, 1]")
        if self.value_coef < 0 or self.value_clip_eps < 0:
            raise ValueError("value_coef, value_clip_eps >= 0")


DenseReward = Callable[[Rollout], torch.Tensor]  # rollout -> (B, T−1) extra per-token rewards on the action columns


def prepare(model, critic: ValueModel, rollout: Rollout, cfg: PPOConfig, reference=None,
            dense_reward: DenseReward | None = None) -> dict[str, torch.Tensor]:
    """π_old, V_old, per-token rewards, GAE advantages and returns of a rollout, each (B, T−1), no gradients."""
    batch = rollout.batch
    mask = batch.action_mask
    logp_old = frozen_logprobs(model, batch)
    with torch.no_grad():
        values_old = action_values(critic, batch) * mask
    kl = None
    if reference is not None and cfg.beta > 0:
        kl = kl_k1(logp_old, frozen_logprobs(reference, batch)) * mask  # log π/π_ref at the sampled tokens
    rewards = terminal_token_rewards(rollout.rewards.flatten(), mask, kl=kl, beta=cfg.beta)  # (B, T−1)
    if dense_reward is not None:
        rewards = rewards + dense_reward(rollout).to(rewards.dtype) * mask
    advantages, returns = gae(rewards, values_old, mask, cfg.gamma, cfg.lam)
    if cfg.whiten_advantages:
        advantages = _whiten(advantages, mask) * mask
    out = {"logp_old": logp_old, "values_old": values_old, "advantages": advantages, "returns": returns}
    if kl is not None:
        out["kl"] = kl
    return out


def _whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """`advantages.whiten` over every rank's tokens (the same statistics as one process over the whole rollout)."""
    if rank_world()[1] == 1:
        return whiten(x, mask, eps)
    m = mask.to(x.dtype)
    n = all_sum(m.sum().item())
    mean = all_sum((x * m).sum().item()) / max(n, 1.0)
    var = all_sum((((x - mean) * m) ** 2).sum().item()) / max(n - 1, 1.0)
    return (x - mean) / (var**0.5 + eps)


def update(trainer: Trainer, critic: ValueModel, rollout: Rollout, prep: dict, cfg: PPOConfig, step: int,
           loss_fn: Callable = ppo_loss) -> dict:
    """μ epochs of minibatch PPO updates of policy and critic (one optimizer, `trainer`'s); returns mean statistics.

    Data parallel: minibatches are drawn over every rank's rows; each rank's token-mean loss is scaled by its share
    of the minibatch's tokens, so the summed gradient is the global minibatch's (as in grpo.update)."""
    model, batch = trainer.model, rollout.batch
    counts = gather(torch.tensor([len(batch)]))  # rows per rank
    start, total, parallel = int(counts[: rank_world()[0]].sum()), int(counts.sum()), len(counts) > 1
    sums: dict[str, float] = {}
    n = 0
    model.train()
    for epoch in range(cfg.epochs):
        for index in minibatches(total, cfg.minibatch_size, cfg.seed, step, epoch):
            index = local_rows(index, start, start + len(batch))
            share, stats = 1.0, {}
            if len(index):
                sub = batch.rows(index)
                w = sub.action_mask.shape[1]
                cut = {k: v[index, :w] for k, v in prep.items()}
                logp = token_logprobs(model, sub)  # (b, w)
                values = action_values(critic, sub)  # (b, w)
                loss, stats = loss_fn(logp, cut["logp_old"], cut["advantages"], values, cut["values_old"],
                                      cut["returns"], sub.action_mask, eps=cfg.clip_eps,
                                      value_eps=cfg.value_clip_eps, value_coef=cfg.value_coef)
            else:  # none of this minibatch is here: a zero gradient, so that every rank steps together
                loss = sum(p.sum() for p in trainer.params) * 0.0
            if parallel:
                tokens = float(batch.action_mask[index].sum())
                share = tokens / max(all_sum(tokens), 1.0)
                loss = loss * share
            grad_norm = trainer.update(loss)
            n += 1
            for k, v in stats.items():  # token means, weighted by this rank's share: summed, the global ones
                sums[k] = sums.get(k, 0.0) + float(v) * share
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + grad_norm / len(counts)
    model.eval()
    sums = all_sum_dict(sums)
    return {k: v / max(1, n) for k, v in sums.items()} | {"updates": n}


def train_ppo(
    policy: TrainablePolicy,
    problems: Sequence[Problem],
    cfg: PPOConfig,
    reward: OutcomeReward,
    critic: ValueModel | None = None,
    reference: torch.nn.Module | None = None,
    dense_reward: DenseReward | None = None,
    ckpt_dir: str | Path | None = None,
    log: Callable[[dict], None] = lambda record: None,
    stop_after: int | None = None,
    name: str = "ppo",
    environment: Callable | None = None,
) -> dict:
    """Train `policy.model` (and the critic) in place for cfg.steps PPO steps; resume from `ckpt_dir` if present.

    critic: default `ValueModel(policy.model, cfg.share_backbone)` (a value model from elsewhere fits if it maps
    (input_ids, attention_mask) -> (B, T) values and has `own_parameters()`/`own_state()`). reference: π_ref for β > 0
    (default a frozen copy of the policy at step 0, saved in checkpoints). dense_reward: extra per-token rewards,
    e.g. `learn.rollout.step_rewards` built from a PRM's per-step scores. environment: multi-turn rollouts through
    its environments (as in `train_grpo`), observation tokens masked out of the losses. Returns {"steps", "seconds", "last"}.
    """
    if (world := learner_ranks()) > 1:
        return train_ppo_parallel(world, policy, problems, cfg, reward, critic, reference, dense_reward,
                                  ckpt_dir, log, stop_after, name, environment)
    if not problems:
        raise ValueError(f"{name}: no training problems")
    model = policy.model
    critic = critic if critic is not None else ValueModel(model, cfg.share_backbone)
    trainer = Trainer(model, cfg, name, ckpt_dir, policy.tokenizer, log, stop_after, aux={"value_model": critic},
                      aux_lr={"value_model": cfg.critic_lr})
    trainer.resume()
    if cfg.beta > 0 or reference is not None:
        reference = trainer.freeze_reference(reference)

    def step_fn(step: int) -> dict:
        t_rollout = time.time()
        index = problem_indices(len(problems), step, cfg.prompts_per_step, cfg.seed)
        index = index[my_rows(len(index))]  # data parallel: this rank's problems (all of them in one process)
        rollout = sample_rollout(policy, [problems[i] for i in index], reward, cfg.sampling(step), environment)
        t_update = time.time()
        prep = prepare(model, critic, rollout, cfg, reference, dense_reward)
        stats = update(trainer, critic, rollout, prep, cfg, step)
        mask = rollout.batch.action_mask
        tokens = max(1.0, all_sum(mask.sum().item()))  # every rank's completion tokens
        rewards, scores = gather(rollout.rewards), gather(rollout.scores)
        record = {"learn/reward": rewards.mean().item(),
                  "learn/solved": (scores >= 1).float().mean().item(),
                  "learn/completion_tokens": gather(rollout.lengths()).mean().item(),
                  "learn/returns": all_sum((prep["returns"] * mask).sum().item()) / tokens,
                  **{f"learn/{k}": v for k, v in stats.items()},
                  "ledger/generated_tokens": all_sum(rollout.ledger.generated_tokens),
                  "time/rollout_s": t_update - t_rollout, "time/update_s": time.time() - t_update,
                  "count/samples": int(all_sum(len(rollout.completions))),
                  "count/generated_tokens": all_sum(rollout.ledger.generated_tokens),
                  "count/train_tokens": int(tokens * cfg.epochs)}
        if "kl" in prep:
            record["learn/kl_ref"] = all_sum(prep["kl"].sum().item()) / tokens
        return record

    return trainer.run(step_fn)


def train_ppo_parallel(world: int, policy: TrainablePolicy, problems: Sequence[Problem], cfg: PPOConfig,
                       reward: OutcomeReward, critic: ValueModel | None = None, reference: torch.nn.Module | None = None,
                       dense_reward: DenseReward | None = None, ckpt_dir: str | Path | None = None,
                       log: Callable[[dict], None] = lambda record: None, stop_after: int | None = None,
                       name: str = "ppo", environment: Callable | None = None) -> dict:
    """`train_ppo` on `world` data-parallel ranks (as `grpo.train_grpo_parallel`: colocated rollouts of each rank's
    share of the problems, gradients of policy and critic summed, advantages whitened over every rank's tokens)."""
    from searchlearn.distributed.launch import (  # Ray is imported only when it is used
        adopt,
        data_parallel,
    )

    critic = critic if critic is not None else ValueModel(policy.model, cfg.share_backbone)  # one init for all ranks
    options = policy.engine_options()
    progress.say(f"{name}: {cfg.steps} steps data-parallel on {world} ranks")
    return adopt(policy.model, data_parallel(_ppo_rank, world, (policy.model, critic), policy.tokenizer, options,
                                             list(problems), cfg, reward, reference, dense_reward, ckpt_dir,
                                             stop_after, name, environment), log)


def _ppo_rank(modules, tokenizer, options, problems, cfg, reward, reference, dense_reward, ckpt_dir, stop_after, name,
              environment=None):
    """One rank of `train_ppo_parallel`; `modules` = (model, critic) in one argument, so that a critic sharing the
    policy's decoder still shares it after pickling."""
    from searchlearn.policy.policy import LocalPolicy

    model, critic = modules
    records: list[dict] = []
    out = train_ppo(LocalPolicy(model, tokenizer, **options), problems, cfg, reward, critic, reference, dense_reward,
                    ckpt_dir, records.append, stop_after, name, environment)
    return out, records, to_arrays(model) if rank_world()[0] == 0 else None
