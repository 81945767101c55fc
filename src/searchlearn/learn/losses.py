"""Pure losses: tensors in, (loss, detached stats) out. No logging, no optimisers, no processes."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sft_loss(logits: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor, n_tokens: float | None = None
             ) -> tuple[torch.Tensor, dict]:
    """Token-level negative log-likelihood on completion tokens only (the prompt is context, not a target).

    L = −(1/|M|) Σ_{t∈M} log π(x_{t+1} | x_≤t), with M the completion positions; `n_tokens` replaces |M| (data
    parallelism: the global batch's count, so that the ranks' gradients sum to the global one).

    logits: (B, T, V) predictions for positions 1..T (already shifted); targets: (B, T); loss_mask: (B, T) in {0, 1}.
    """
    nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none").view_as(targets)
    mask = loss_mask.to(nll.dtype)
    n_tokens = mask.sum().clamp(min=1) if n_tokens is None else max(1.0, n_tokens)
    loss = (nll * mask).sum() / n_tokens
    return loss, {"loss": loss.item(), "tokens": int(mask.sum().item())}


# -- KL to a frozen reference -------------------------------------------------------------------------------------
# Estimators of KL(π_θ ‖ π_ref) from tokens sampled from π_θ, per token (Schulman 2020, "Approximating KL
# Divergence", http://joschu.net/blog/kl-approx.html). With r = π_ref(x)/π_θ(x): k1 = −log r (unbiased, high variance,
# can be negative), k2 = ½(log r)² (biased, low variance), k3 = (r − 1) − log r (unbiased, low variance, ≥ 0).
# Each maps logp, logp_ref (B, T) -> (B, T).

def kl_k1(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """k1 = log π_θ(x) − log π_ref(x): unbiased for KL(π_θ ‖ π_ref) under x ~ π_θ."""
    return logp - logp_ref


def kl_k2(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """k2 = ½ (log π_ref(x) − log π_θ(x))²: biased (second order in log r), never negative."""
    return 0.5 * (logp_ref - logp) ** 2


def kl_k3(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """k3 = (r − 1) − log r with r = π_ref(x)/π_θ(x): unbiased and ≥ 0 (DeepSeekMath Eq. 4 uses it for GRPO)."""
    log_r = logp_ref - logp
    return torch.expm1(log_r) - log_r


# -- policy-gradient surrogates -----------------------------------------------------------------------------------
# Shared signature of the GRPO family (the online trainer calls any of them the same way):
#   loss_fn(logp, logp_old, advantages, mask, logp_ref=None, beta=0.0) -> (loss, stats)
# logp, logp_old, logp_ref, mask: (B, T) over completion tokens; advantages: (B,) per sequence or (B, T) per token.
# Hyperparameters (clip ranges, Dr. GRPO's constant) are keyword arguments, bound with functools.partial.

def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def _clipped_surrogate(logp, logp_old, advantages, mask, eps_low: float, eps_high: float):
    """Per-token −min(ρ·Â, clip(ρ, 1−ε_low, 1+ε_high)·Â) with ρ = exp(logp − logp_old) (Schulman et al. 2017, Eq. 7).

    Returns (per_token (B, T), stats) where stats has the ratio, the fraction of tokens whose clip is active (the
    gradient is cut there), and the k3 estimate of KL(π_old ‖ π_θ) between the sampler and the current policy.
    """
    mask = mask.to(logp.dtype)
    adv = advantages[:, None] if advantages.dim() == 1 else advantages  # (B, 1) or (B, T)
    log_ratio = logp - logp_old  # (B, T)
    ratio = log_ratio.exp()
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high) * adv
    per_token = -torch.minimum(unclipped, clipped)  # (B, T)
    with torch.no_grad():
        active = (clipped < unclipped).to(logp.dtype)  # the min picked the clipped (constant) term
        low = active * (ratio < 1).to(logp.dtype)
        stats = {"ratio": _masked_mean(ratio, mask).item(), "clip_frac": _masked_mean(active, mask).item(),
                 "clip_frac_low": _masked_mean(low, mask).item(),
                 "clip_frac_high": _masked_mean(active - low, mask).item(),
                 "approx_kl_old": _masked_mean(torch.expm1(-log_ratio) + log_ratio, mask).item(),
                 "entropy": _masked_mean(-logp_old, mask).item(),  # MC estimate: −log π_old of the sampled tokens
                 "tokens": int(mask.sum().item())}
    return per_token, stats


def _with_kl(per_token, logp, logp_ref, mask, beta: float, kl_estimator, stats: dict):
    """per_token + β·KL_t (DeepSeekMath Eq. 3: the KL is a loss term, not a reward term); records the mean KL."""
    if logp_ref is None:
        if beta:
            raise ValueError("beta > 0 needs logp_ref (the frozen reference's log-probabilities)")
        return per_token
    kl = kl_estimator(logp, logp_ref)  # (B, T)
    stats["kl_ref"] = _masked_mean(kl.detach(), mask.to(kl.dtype)).item()
    return per_token + beta * kl if beta else per_token


def grpo_loss(logp, logp_old, advantages, mask, logp_ref=None, beta: float = 0.0, eps_low: float = 0.2,
              eps_high: float | None = None, kl_estimator=kl_k3) -> tuple[torch.Tensor, dict]:
    """GRPO (Shao et al. 2024, "DeepSeekMath", Eq. 3): clipped surrogate + β·KL_k3, length-normalised per sequence.

    J = (1/G) Σ_i (1/|o_i|) Σ_t [min(ρ_it Â_i, clip(ρ_it) Â_i) − β D_KL,t]: the token mean inside each sequence, then
    the mean over sequences. (Long sequences get less weight per token: the length bias Dr. GRPO removes.)
    eps_high defaults to eps_low (a symmetric clip).
    """
    eps_high = eps_low if eps_high is None else eps_high
    per_token, stats = _clipped_surrogate(logp, logp_old, advantages, mask, eps_low, eps_high)
    per_token = _with_kl(per_token, logp, logp_ref, mask, beta, kl_estimator, stats)
    m = mask.to(per_token.dtype)
    loss = ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()  # sequence mean, then batch mean
    stats["loss"] = loss.item()
    return loss, stats


def dr_grpo_loss(logp, logp_old, advantages, mask, logp_ref=None, beta: float = 0.0, eps_low: float = 0.2,
                 eps_high: float | None = None, max_tokens: int | None = None, kl_estimator=kl_k3
                 ) -> tuple[torch.Tensor, dict]:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training", Eq. 3 / §3.2): no length normalisation.

    L = (1/B) Σ_i Σ_t ℓ_it / L_max: each sequence's token *sum*, divided by one constant for every sequence (the
    generation budget `max_tokens`; default the padded width T, so pass the budget to make it constant across
    minibatches). Pair with `dr_grpo_advantages` (no std scaling).
    """
    eps_high = eps_low if eps_high is None else eps_high
    per_token, stats = _clipped_surrogate(logp, logp_old, advantages, mask, eps_low, eps_high)
    per_token = _with_kl(per_token, logp, logp_ref, mask, beta, kl_estimator, stats)
    constant = max_tokens or mask.shape[-1]
    loss = (per_token * mask.to(per_token.dtype)).sum(-1).mean() / constant
    stats["loss"] = loss.item()
    return loss, stats


def dapo_loss(logp, logp_old, advantages, mask, logp_ref=None, beta: float = 0.0, eps_low: float = 0.2,
              eps_high: float = 0.28, kl_estimator=kl_k3) -> tuple[torch.Tensor, dict]:
    """DAPO (Yu et al. 2025, Eq. 8 / §3.1 and §3.3): clip-higher and a token-level mean over the whole batch.

    J = (1/Σ_i |o_i|) Σ_i Σ_t min(ρ_it Â_i, clip(ρ_it, 1−ε_low, 1+ε_high) Â_i), with ε_high > ε_low so that
    low-probability tokens with positive advantage can grow (against entropy collapse); every token weighs the same
    whatever its sequence's length. DAPO drops the KL term (β = 0); it is accepted here for ablations.
    """
    per_token, stats = _clipped_surrogate(logp, logp_old, advantages, mask, eps_low, eps_high)
    per_token = _with_kl(per_token, logp, logp_ref, mask, beta, kl_estimator, stats)
    loss = _masked_mean(per_token, mask.to(per_token.dtype))
    stats["loss"] = loss.item()
    return loss, stats


def rloo_loss(logp, logp_old, advantages, mask, logp_ref=None, beta: float = 0.0, eps: float = 0.2,
              kl_estimator=kl_k3) -> tuple[torch.Tensor, dict]:
    """RLOO (Ahmadian et al. 2024, "Back to Basics", §3-4): the whole completion is one action.

    L = −(1/B) Σ_i min(ρ_i Â_i, clip(ρ_i, 1±ε) Â_i) with the *sequence* ratio ρ_i = π_θ(y_i|x)/π_old(y_i|x); on-policy
    (ρ = 1) its gradient is REINFORCE's −Â_i ∇ log π_θ(y_i|x). advantages: (B,), e.g. from `rloo_advantages`.
    A β > 0 adds β·(Σ_t KL_t) per sequence.
    """
    m = mask.to(logp.dtype)
    seq_logp, seq_logp_old = (logp * m).sum(-1), (logp_old * m).sum(-1)  # (B,)
    per_seq, stats = _clipped_surrogate(seq_logp[:, None], seq_logp_old[:, None], advantages, m.amax(-1, True),
                                        eps, eps)  # (B, 1): one "token" per sequence
    per_seq = per_seq[:, 0]
    if logp_ref is not None:
        kl = (kl_estimator(logp, logp_ref) * m).sum(-1)  # (B,)
        stats["kl_ref"] = (kl.detach().sum() / m.sum().clamp(min=1)).item()
        per_seq = per_seq + beta * kl
    elif beta:
        raise ValueError("beta > 0 needs logp_ref (the frozen reference's log-probabilities)")
    loss = per_seq.mean()
    stats["loss"], stats["tokens"] = loss.item(), int(m.sum().item())
    return loss, stats


def reinforce_pp_loss(logp, logp_old, advantages, mask, logp_ref=None, beta: float = 0.0, eps: float = 0.2,
                      kl_estimator=kl_k3) -> tuple[torch.Tensor, dict]:
    """REINFORCE++ (Hu 2025, §3 Eq. 8): PPO's clipped surrogate without a critic, token-level mean over the batch.

    Pair with `reinforce_pp_advantages` (global-batch-normalised rewards). Hu puts the KL in the reward
    (`reinforce_pp_token_advantages`); β > 0 here adds it as a loss term instead (OpenRLHF's KL-loss option).
    """
    per_token, stats = _clipped_surrogate(logp, logp_old, advantages, mask, eps, eps)
    per_token = _with_kl(per_token, logp, logp_ref, mask, beta, kl_estimator, stats)
    loss = _masked_mean(per_token, mask.to(per_token.dtype))
    stats["loss"] = loss.item()
    return loss, stats


# What each family loss averages over: under data parallelism a rank's loss is rescaled by its share of these units
# (learn/grpo.py), so that the ranks' gradients sum to the global batch's.
for _loss, _unit in ((grpo_loss, "sequences"), (dr_grpo_loss, "sequences"), (rloo_loss, "sequences"),
                     (dapo_loss, "tokens"), (reinforce_pp_loss, "tokens")):
    _loss.mean_over = _unit


# -- PPO with a critic ----------------------------------------------------------------------------------------------

def ppo_policy_loss(logp, logp_old, advantages, mask, eps: float = 0.2) -> tuple[torch.Tensor, dict]:
    """PPO clipped surrogate (Schulman et al. 2017, "Proximal Policy Optimization Algorithms", Eq. 7).

    L^CLIP = −E_t[min(ρ_t Â_t, clip(ρ_t, 1−ε, 1+ε) Â_t)], the expectation a mean over every real token of the batch.
    advantages: (B, T) per token (GAE) or (B,).
    """
    per_token, stats = _clipped_surrogate(logp, logp_old, advantages, mask, eps, eps)
    loss = _masked_mean(per_token, mask.to(per_token.dtype))
    stats["policy_loss"] = loss.item()
    return loss, stats


def ppo_value_loss(values, values_old, returns, mask, eps: float = 0.2) -> tuple[torch.Tensor, dict]:
    """Clipped value loss (Schulman et al. 2017 baselines; Ziegler et al. 2019): ½ E_t[max((V−R)², (V_clip−R)²)].

    V_clip = V_old + clip(V − V_old, −ε, ε) keeps the critic near the values the advantages were computed with.
    values, values_old, returns, mask: (B, T). eps ≤ 0 turns the clip off.
    """
    mask = mask.to(values.dtype)
    unclipped = (values - returns) ** 2
    if eps > 0:
        v_clip = values_old + (values - values_old).clamp(-eps, eps)
        per_token = torch.maximum(unclipped, (v_clip - returns) ** 2)
    else:
        per_token = unclipped
    loss = 0.5 * _masked_mean(per_token, mask)
    with torch.no_grad():
        stats = {"value_loss": loss.item(), "value_clip_frac": _masked_mean((per_token > unclipped).to(mask.dtype),
                                                                            mask).item(),
                 "value_mean": _masked_mean(values, mask).item()}
    return loss, stats


def ppo_loss(logp, logp_old, advantages, values, values_old, returns, mask, eps: float = 0.2,
             value_eps: float = 0.2, value_coef: float = 0.5) -> tuple[torch.Tensor, dict]:
    """PPO's combined objective (Schulman et al. 2017, Eq. 9 without the entropy bonus): L^CLIP + c_V · L^V.

    All tensors (B, T) over completion tokens (advantages may be (B,)); returns (loss, stats of both parts).
    """
    policy, stats = ppo_policy_loss(logp, logp_old, advantages, mask, eps)
    value, value_stats = ppo_value_loss(values, values_old, returns, mask, value_eps)
    loss = policy + value_coef * value
    return loss, {**stats, **value_stats, "loss": loss.item()}


# -- preference optimisation --------------------------------------------------------------------------------------
# Shared signature: loss_fn(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta) -> (loss, stats), each input
# (B,): the summed log-probability of the chosen / rejected completion under the policy and the frozen reference.

def _preference_stats(h: torch.Tensor, logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta: float) -> dict:
    with torch.no_grad():
        return {"reward_chosen": (beta * (logp_chosen - ref_chosen)).mean().item(),
                "reward_rejected": (beta * (logp_rejected - ref_rejected)).mean().item(),
                "margin": (beta * h).mean().item(), "accuracy": (h > 0).float().mean().item(), "pairs": h.numel()}


def dpo_loss(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta: float = 0.1,
             label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict]:
    """DPO (Rafailov et al. 2023, "Direct Preference Optimization", Eq. 7).

    L = −E[log σ(β h)], h = (log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x)). With
    label_smoothing ε > 0, the conservative variant −(1−ε) log σ(βh) − ε log σ(−βh) (Mitchell 2023, "cDPO").
    """
    h = (logp_chosen - ref_chosen) - (logp_rejected - ref_rejected)  # (B,)
    losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    loss = losses.mean()
    return loss, {"loss": loss.item(), **_preference_stats(h, logp_chosen, logp_rejected, ref_chosen, ref_rejected,
                                                           beta)}


def ipo_loss(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta: float = 0.1) -> tuple[torch.Tensor, dict]:
    """IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human Preferences", Eq. 17).

    L = E[(h − 1/(2τ))²] with h as in DPO and τ = `beta`: a squared loss that regresses the log-ratio margin to a
    finite target, so it cannot overfit deterministic preferences the way DPO's sigmoid can.
    """
    h = (logp_chosen - ref_chosen) - (logp_rejected - ref_rejected)  # (B,)
    loss = ((h - 1 / (2 * beta)) ** 2).mean()
    return loss, {"loss": loss.item(), **_preference_stats(h, logp_chosen, logp_rejected, ref_chosen, ref_rejected,
                                                           beta)}


# -- reward models (reward/models.py) ----------------------------------------------------------------------------------
def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Binary cross-entropy with logits, (N,) each; targets may be soft in [0, 1] (Math-Shepherd's soft labels)."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets.float())
    acc = ((logits > 0).float() == (targets >= 0.5).float()).float().mean()
    return loss, {"loss": loss.item(), "accuracy": acc.item()}


def mse_loss(values: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """½(V − y)², mean over (N,): value regression."""
    loss = 0.5 * (values.float() - targets.float()).pow(2).mean()
    return loss, {"loss": loss.item()}


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """−log σ(r⁺ − r⁻), mean over pairs (N,) (Bradley & Terry 1952; rStar-Math's PPM loss)."""
    diff = r_chosen.float() - r_rejected.float()
    loss = F.softplus(-diff).mean()  # softplus(−x) = −log σ(x), stable
    return loss, {"loss": loss.item(), "accuracy": (diff > 0).float().mean().item()}
