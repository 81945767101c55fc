"""PPO with a learned critic for LLM policies (Schulman et al. 2017; Ziegler et al. 2019; Ouyang et al. 2022).

Each step: sample completions, score them, build per-token rewards (the outcome reward at the last token, −β·k1 KL
to the frozen reference at every token, plus any dense per-step reward a PRM or shaping supplies), estimate
advantages with GAE from the critic's values, then run μ epochs of minibatch updates of the clipped surrogate and
the clipped value loss.

The critic is `ValueModel`: a decoder stack with a scalar head. `LlamaForCausalLM.forward` returns only logits, so
instead of reaching into it the value model *is* a LlamaForCausalLM whose lm_head is an nn.Linear(D, 1): the same
forward, returning (B, T, 1). By default its decoder is a copy of the policy's (a separate critic, as in InstructGPT);
`share_backbone=True` reuses the policy's decoder (value gradients then reach the policy's weights).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from searchlearn import progress
from searchlearn.learn import checkpoint
from searchlearn.learn.advantages import gae, terminal_token_rewards, whiten
from searchlearn.learn.losses import kl_k1, ppo_loss
from searchlearn.learn.rollout import (
    Batch,
    OutcomeReward,
    Rollout,
    cosine_lr,
    frozen_logprobs,
    minibatches,
    problem_indices,
    sample_rollout,
    token_logprobs,
)
from searchlearn.learn.sft import make_optimizer
from searchlearn.policy.model import LlamaForCausalLM
from searchlearn.types import Problem, SamplingParams

CRITIC_FILE = "value_model.safetensors"
REFERENCE_DIR = "reference"


class ValueModel(nn.Module):
    """V(prefix) at every position: a Llama decoder whose head is nn.Linear(D, 1). (B, T) ids -> (B, T) values."""

    def __init__(self, policy_model: LlamaForCausalLM, share_backbone: bool = False):
        super().__init__()
        config = policy_model.config
        with torch.device("meta"):  # a shell: its decoder and head are replaced below, nothing is allocated
            net = LlamaForCausalLM(config)
        net.model = policy_model.model if share_backbone else copy.deepcopy(policy_model.model)
        weight = policy_model.lm_head.weight
        net.lm_head = nn.Linear(config.hidden_size, 1, device=weight.device, dtype=weight.dtype)
        nn.init.zeros_(net.lm_head.weight)  # V ≡ 0 at the start: the first advantages are the returns
        nn.init.zeros_(net.lm_head.bias)
        self.net = net
        self.shared = share_backbone

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(input_ids, attention_mask=attention_mask)[..., 0].float()  # (B, T)

    def own_parameters(self) -> list[nn.Parameter]:
        """The parameters the critic adds: the head, plus the decoder when it is not shared."""
        return list(self.net.lm_head.parameters()) + ([] if self.shared else list(self.net.model.parameters()))

    def own_state(self) -> dict[str, torch.Tensor]:
        names = {id(p) for p in self.own_parameters()}
        return {k: v.detach().contiguous().cpu() for k, v in self.named_parameters() if id(v) in names}


def action_values(critic: ValueModel, batch: Batch) -> torch.Tensor:
    """V(s_t) aligned with the log-probability columns: column t is the prefix through token t, (B, T−1)."""
    return critic(batch.input_ids, batch.attention_mask)[:, :-1]


@dataclass
class PPOConfig:
    steps: int = 100  # RL steps, each one rollout and its updates
    prompts_per_step: int = 64  # N training problems per rollout
    samples_per_prompt: int = 1  # completions per problem
    temperature: float = 1.0  # sampling temperature of the rollouts
    top_p: float = 1.0  # nucleus mass of the rollouts
    max_new_tokens: int = 128  # completion cap while sampling
    epochs: int = 2  # μ passes over each rollout
    minibatch_size: int = 0  # sequences per optimizer step (0 = the whole rollout)
    lr: float = 1e-5  # peak policy learning rate
    critic_lr: float = 1e-4  # peak critic learning rate
    min_lr_ratio: float = 1.0  # cosine floor as a fraction of the peak (1 = constant after warm-up)
    warmup_steps: int = 0  # linear warm-up, in RL steps
    weight_decay: float = 0.0  # AdamW decay on the policy's matrices
    betas: tuple[float, float] = (0.9, 0.99)  # AdamW betas
    grad_clip: float = 1.0  # max global grad norm over policy and critic (0 = off)
    gamma: float = 1.0  # discount γ per token
    lam: float = 0.95  # GAE λ
    clip_eps: float = 0.2  # PPO ratio clip ε
    value_clip_eps: float = 0.2  # value clip around the rollout's values (0 = off)
    value_coef: float = 0.5  # c_V, weight of the value loss
    beta: float = 0.0  # per-token KL penalty −β·log(π/π_ref) in the reward (0 = no reference model)
    whiten_advantages: bool = True  # normalise advantages over the rollout's tokens
    share_backbone: bool = False  # the critic reuses the policy's decoder instead of a copy
    checkpoint_every: int = 0  # steps between checkpoints (0 = only at the end)
    log_every: int = 1  # steps between logged records
    seed: int = 0  # seeds the problem order, the sampling and the minibatch order

    def __post_init__(self) -> None:
        if self.steps < 0 or self.prompts_per_step < 1 or self.samples_per_prompt < 1 or self.epochs < 1:
            raise ValueError("steps >= 0; prompts_per_step, samples_per_prompt, epochs >= 1")
        if self.max_new_tokens < 1 or self.minibatch_size < 0 or self.log_every < 1 or self.checkpoint_every < 0:
            raise ValueError("max_new_tokens, log_every >= 1; minibatch_size, checkpoint_every >= 0")
        if self.lr <= 0 or self.critic_lr <= 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            raise ValueError("lr, critic_lr > 0; min_lr_ratio in [0, 1]; warmup_steps >= 0")
        if not 0 <= self.gamma <= 1 or not 0 <= self.lam <= 1 or self.clip_eps <= 0 or self.temperature <= 0:
            raise ValueError("gamma, lam in [0, 1]; clip_eps, temperature > 0")
        if self.beta < 0 or self.value_coef < 0 or self.grad_clip < 0:
            raise ValueError("beta, value_coef, grad_clip >= 0")


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
        advantages = whiten(advantages, mask) * mask
    out = {"logp_old": logp_old, "values_old": values_old, "advantages": advantages, "returns": returns}
    if kl is not None:
        out["kl"] = kl
    return out


def update(model, critic: ValueModel, optimizer, rollout: Rollout, prep: dict, cfg: PPOConfig, step: int,
           loss_fn: Callable = ppo_loss) -> dict:
    """μ epochs of minibatch PPO updates of policy and critic; returns mean statistics."""
    batch = rollout.batch
    params = [p for g in optimizer.param_groups for p in g["params"]]
    sums: dict[str, float] = {}
    n = 0
    model.train()
    for epoch in range(cfg.epochs):
        for index in minibatches(len(batch), cfg.minibatch_size, cfg.seed, step, epoch):
            sub = batch.rows(index)
            w = sub.action_mask.shape[1]
            cut = {k: v[index, :w] for k, v in prep.items()}
            logp = token_logprobs(model, sub)  # (b, w)
            values = action_values(critic, sub)  # (b, w)
            loss, stats = loss_fn(logp, cut["logp_old"], cut["advantages"], values, cut["values_old"],
                                  cut["returns"], sub.action_mask, eps=cfg.clip_eps, value_eps=cfg.value_clip_eps,
                                  value_coef=cfg.value_coef)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip or float("inf"))
            optimizer.step()
            n += 1
            for k, v in {**stats, "grad_norm": float(grad_norm)}.items():
                sums[k] = sums.get(k, 0.0) + float(v)
    model.eval()
    return {k: v / max(1, n) for k, v in sums.items()} | {"updates": n}


def train_ppo(
    policy,
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
) -> dict:
    """Train `policy.model` (and the critic) in place for cfg.steps PPO steps; resume from `ckpt_dir` if present.

    critic: default `ValueModel(policy.model, cfg.share_backbone)` (a value model from elsewhere fits if it maps
    (input_ids, attention_mask) -> (B, T) values and has `own_parameters()`/`own_state()`). reference: π_ref for β > 0
    (default a frozen copy of the policy at step 0, saved in checkpoints). dense_reward: extra per-token rewards,
    e.g. `learn.rollout.step_rewards` built from a PRM's per-step scores. Returns {"steps", "seconds", "last"}.
    """
    if not problems:
        raise ValueError(f"{name}: no training problems")
    model = policy.model
    critic = critic if critic is not None else ValueModel(model, cfg.share_backbone)
    optimizer = make_optimizer(model, cfg)
    optimizer.add_param_group({"params": critic.own_parameters(), "lr": cfg.critic_lr, "weight_decay": 0.0})
    peaks = [g["lr"] for g in optimizer.param_groups]
    step = 0
    if ckpt_dir is not None and checkpoint.exists(ckpt_dir):
        step, reference = _resume(model, critic, optimizer, Path(ckpt_dir), cfg, reference)
        progress.say(f"{name}: resumed at step {step}/{cfg.steps} from {ckpt_dir}")
    if cfg.beta > 0 and reference is None:
        reference = copy.deepcopy(model)
    if reference is not None:
        reference.eval().requires_grad_(False)
    t0, last = time.time(), {}
    with progress.bar(name, total=cfg.steps) as bar:
        bar.advance(step)
        while step < cfg.steps and (stop_after is None or step < stop_after):
            factor = cosine_lr(step, cfg.steps, 1.0, cfg.warmup_steps, cfg.min_lr_ratio)
            for group, peak in zip(optimizer.param_groups, peaks):
                group["lr"] = peak * factor
            t_rollout = time.time()
            index = problem_indices(len(problems), step, cfg.prompts_per_step, cfg.seed)
            params = SamplingParams(n=cfg.samples_per_prompt, temperature=cfg.temperature, top_p=cfg.top_p,
                                    max_new_tokens=cfg.max_new_tokens, seed=cfg.seed * 1_000_003 + step * 101)
            rollout = sample_rollout(policy, [problems[i] for i in index], reward, params)
            t_update = time.time()
            prep = prepare(model, critic, rollout, cfg, reference, dense_reward)
            stats = update(model, critic, optimizer, rollout, prep, cfg, step)
            step += 1
            bar.advance()
            mask = rollout.batch.action_mask
            record = {"phase": name, "step": step, "learn/reward": rollout.rewards.mean().item(),
                      "learn/solved": (rollout.scores >= 1).float().mean().item(),
                      "learn/completion_tokens": rollout.lengths().mean().item(),
                      "learn/returns": (prep["returns"] * mask).sum().item() / mask.sum().clamp(min=1).item(),
                      **{f"learn/{k}": v for k, v in stats.items()}, "learn/lr": cfg.lr * factor,
                      "ledger/generated_tokens": rollout.ledger.generated_tokens,
                      "time/rollout_s": t_update - t_rollout, "time/update_s": time.time() - t_update}
            if "kl" in prep:
                record["learn/kl_ref"] = prep["kl"].sum().item() / mask.sum().clamp(min=1).item()
            if step % cfg.log_every == 0 or step == cfg.steps:
                log(record)
            last = record
            if ckpt_dir is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                checkpoint.save(ckpt_dir, _Bundle(model, critic, reference), policy.tokenizer, optimizer, step)
    if ckpt_dir is not None and (step == cfg.steps or stop_after is not None):
        checkpoint.save(ckpt_dir, _Bundle(model, critic, reference), policy.tokenizer, optimizer, step)
    model.eval()
    return {"steps": step, "seconds": time.time() - t0, "last": last}


class _Bundle:
    """Adapter for checkpoint.save: the policy, the critic's own weights, and the frozen reference if any."""

    def __init__(self, model, critic, reference):
        self.model, self.critic, self.reference = model, critic, reference

    def save_pretrained(self, directory: Path) -> None:
        directory = Path(directory)
        self.model.save_pretrained(directory)
        save_file(self.critic.own_state(), str(directory / CRITIC_FILE), metadata={"format": "pt"})
        if self.reference is not None:
            self.reference.save_pretrained(directory / REFERENCE_DIR)


def _resume(model, critic, optimizer, ckpt_dir: Path, cfg: PPOConfig, reference):
    meta, state = checkpoint.load_state(ckpt_dir)
    model.load_state_dict(type(model).from_pretrained(ckpt_dir).state_dict())
    unexpected = critic.load_state_dict(load_file(str(ckpt_dir / CRITIC_FILE)), strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"{ckpt_dir / CRITIC_FILE}: unexpected critic weights {unexpected[:3]}")
    if state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    checkpoint.set_rng_state(state["rng"])
    if reference is None and cfg.beta > 0 and (ckpt_dir / REFERENCE_DIR).is_dir():
        reference = LlamaForCausalLM.from_pretrained(ckpt_dir / REFERENCE_DIR)
    return int(meta["step"]), reference
