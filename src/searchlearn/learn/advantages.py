"""Pure advantage estimators: reward tensors in, advantage tensors out. No models, no optimisers.

Outcome rewards of a GRPO-style rollout are laid out group-major as `(N, G)`: N prompts, G samples each. Token-level
quantities are `(B, T)` with a `{0, 1}` mask over completion tokens. Every function here is one estimator; a trainer
is handed the function, never a name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def grpo_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Group-normalised advantages (GRPO; Shao et al. 2024, "DeepSeekMath", §4.1.2 outcome supervision).

    Â_i = (r_i − mean(r)) / (std(r) + ε) within each group of G samples of one prompt. std is the unbiased sample
    standard deviation (Bessel's correction, as torch and TRL compute it). rewards: (N, G) -> (N, G).
    """
    mean = rewards.mean(-1, keepdim=True)  # (N, 1)
    std = rewards.std(-1, keepdim=True) if rewards.shape[-1] > 1 else torch.zeros_like(mean)  # (N, 1)
    return (rewards - mean) / (std + eps)


def dr_grpo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Dr. GRPO advantages (Liu et al. 2025, "Understanding R1-Zero-Like Training", Eq. 3 / §3.2): Â_i = r_i − mean(r).

    Dropping GRPO's division by std removes the question-level difficulty bias (groups with almost-uniform rewards
    would otherwise get their tiny differences blown up). rewards: (N, G) -> (N, G).
    """
    return rewards - rewards.mean(-1, keepdim=True)


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE Leave-One-Out (Ahmadian et al. 2024, "Back to Basics", Eq. 4; Kool et al. 2019).

    Â_i = r_i − (1/(G−1)) Σ_{j≠i} r_j, the mean reward of the *other* samples as baseline, which is unbiased because
    the baseline does not depend on sample i. Equals G/(G−1) · (r_i − mean(r)). rewards: (N, G) with G ≥ 2 -> (N, G).
    """
    G = rewards.shape[-1]
    if G < 2:
        raise ValueError("RLOO needs at least 2 samples per prompt")
    baseline = (rewards.sum(-1, keepdim=True) - rewards) / (G - 1)  # (N, G)
    return rewards - baseline


def w_reinforce_advantages(rewards: torch.Tensor, positive_weight: float = 0.1) -> torch.Tensor:
    """W-REINFORCE (Zhu et al. 2025, "The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning",
    arXiv 2506.01347, §4): REINFORCE with rewards ±1 and the positive samples down-weighted by λ,
    L = −λ Σ_{y+} log π(y+) + Σ_{y−} log π(y−). For r ∈ [0, 1]: Â = λ·r − (1 − r) (λ for a solved sample, −1 for a
    failed one). No baseline and no group: every sample pushes, failures hardest. rewards: (N, G) -> (N, G).
    """
    return positive_weight * rewards - (1 - rewards)


def reinforce_pp_advantages(rewards: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """REINFORCE++ (Hu 2025, "REINFORCE++: A Simple and Efficient Approach for Aligning LLMs", §3 Eq. 6-7).

    No critic and no per-prompt group: the advantage is the reward normalised over the whole *global batch*,
    Â = (r − mean_batch(r)) / (std_batch(r) + ε), which is what keeps the estimator stable across prompts.
    rewards: any shape (all entries form the batch) -> the same shape.
    """
    flat = rewards.flatten()
    std = flat.std() if flat.numel() > 1 else flat.new_zeros(())
    return (rewards - flat.mean()) / (std + eps)


def reinforce_pp_baseline_advantages(rewards: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """REINFORCE++-baseline (Hu 2025, §3.3): subtract the group mean first, then normalise over the global batch.

    For G samples per prompt: Â = norm_batch(r_i − mean_group(r)). rewards: (N, G) -> (N, G).
    """
    return reinforce_pp_advantages(rewards - rewards.mean(-1, keepdim=True), eps)


def reinforce_pp_token_advantages(rewards: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float,
                                  eps: float = 1e-8) -> torch.Tensor:
    """REINFORCE++ with the KL penalty in the reward (Hu 2025, Eq. 5-7): per-token returns, batch-normalised.

    r_t = −β·KL_t at every token, plus the outcome reward at the last token; A_t = Σ_{s≥t} r_s (γ = 1); then
    A ← (A − mean)/std over every real token of the batch. rewards: (B,) outcomes; kl, mask: (B, T) -> (B, T).
    """
    token_rewards = terminal_token_rewards(rewards, mask, kl=kl, beta=beta)  # (B, T)
    returns = token_rewards.flip(-1).cumsum(-1).flip(-1) * mask  # (B, T) reward-to-go
    return whiten(returns, mask, eps) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised Advantage Estimation (Schulman et al. 2016, "High-Dimensional Continuous Control Using GAE", Eq. 16).

    δ_t = r_t + γ V(s_{t+1}) − V(s_t);  Â_t = Σ_l (γλ)^l δ_{t+l} = δ_t + γλ Â_{t+1}.  Returns R_t = Â_t + V(s_t) are
    the value targets. The state after the last real token is terminal (V = 0). `mask` (B, T) marks the model's
    tokens; the positions it leaves out (the prompt, padding, an environment's answers between turns) are passed over:
    the recursion runs over the model's tokens in order, so a tool call's tokens take the credit of what follows its
    answer. rewards, values, mask: (B, T) -> (advantages, returns), each (B, T), zero where the mask is.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    B, T = rewards.shape
    advantages = torch.zeros_like(values)
    next_value = values.new_zeros(B)  # (B,) V of the next model token's state; 0 past the last one (terminal)
    running = values.new_zeros(B)  # (B,) Â at the next model token
    for t in reversed(range(T)):
        m = mask[:, t].bool()
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = torch.where(m, delta + gamma * lam * running, running)  # unmasked positions leave it as it was
        advantages[:, t] = running * mask[:, t]
        next_value = torch.where(m, values[:, t], next_value)
    return advantages, (advantages + values) * mask


def step_gae(reward: float, values: Sequence[float], lam: float = 1.0) -> list[float]:
    """GAE(λ) over the T steps of one solution, γ = 1 (Schulman et al. 2016, Eq. 16, with steps for time steps).

    The outcome `reward` R arrives with the last step; values = V(s_0) … V(s_{T−1}) (s_k: the state before step k),
    and the state after the last step is terminal, V(s_T) = 0.
        δ_k = [k = T−1]·R + V(s_{k+1}) − V(s_k),   Â_k = δ_k + λ Â_{k+1}.
    λ = 1 gives the Monte-Carlo advantage Â_k = R − V(s_k) (V acts as a baseline only); λ = 0 gives the one-step
    δ_k, the change of value the step itself made (credit where the value moved). Returns T advantages.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    T = len(values)
    out = [0.0] * T
    running = 0.0
    for k in reversed(range(T)):
        following = values[k + 1] if k + 1 < T else 0.0
        delta = (reward if k == T - 1 else 0.0) + following - values[k]
        running = delta + lam * running
        out[k] = running
    return out


def terminal_token_rewards(rewards: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor | None = None,
                           beta: float = 0.0) -> torch.Tensor:
    """Per-token rewards for token-level RL (Ziegler et al. 2019; Ouyang et al. 2022, Eq. 2).

    r_t = −β·KL_t at every real token, plus the outcome reward at the last real token. rewards: (B,);
    mask: (B, T), each row's real tokens one contiguous run (a prompt offset before it is fine); kl: (B, T) per-token KL estimate or None -> (B, T).
    """
    mask = mask.to(torch.float32)
    out = torch.zeros_like(mask)  # (B, T)
    positions = torch.arange(mask.shape[-1], device=mask.device, dtype=mask.dtype)  # (T,)
    last = (mask * (positions + 1)).argmax(-1)  # (B,) index of the last real token
    out.scatter_(1, last[:, None], rewards.to(out.dtype)[:, None])
    if kl is not None and beta:
        out = out - beta * kl.to(out.dtype)
    return out * mask


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean)/std over the masked entries (the batch normalisation PPO implementations apply to advantages)."""
    m = mask.to(x.dtype)
    n = m.sum().clamp(min=1)
    mean = (x * m).sum() / n
    var = (((x - mean) * m) ** 2).sum() / (n - 1).clamp(min=1)
    return (x - mean) / (var.sqrt() + eps)


def dapo_dynamic_sampling_mask(rewards: torch.Tensor) -> torch.Tensor:
    """DAPO dynamic sampling (Yu et al. 2025, "DAPO", §3.2 Eq. 11): keep only groups whose rewards are not all equal.

    A group where every sample scores the same (all right or all wrong) has zero group-relative advantage and so
    contributes no gradient; dropping it keeps the effective batch informative. rewards: (N, G) -> keep: (N,) bool.
    """
    return (rewards != rewards[..., :1]).any(-1)


def overlong_penalty(lengths: torch.Tensor, max_length: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO soft overlong punishment (Yu et al. 2025, §3.4 Eq. 13), added to the outcome reward.

    R_length(y) = 0 if |y| ≤ L_max − L_cache;  ((L_max − L_cache) − |y|) / L_cache if L_max − L_cache < |y| ≤ L_max;
    −1 if |y| > L_max; scaled by `factor`. lengths: (B,) completion lengths; L_max = max_length, L_cache = buffer.
    """
    if buffer < 1 or buffer > max_length:
        raise ValueError(f"buffer must be in [1, max_length={max_length}], got {buffer}")
    lengths = lengths.to(torch.float32)
    start = max_length - buffer
    ramp = (start - lengths) / buffer  # (B,) 0 at the start of the buffer, −1 at L_max
    penalty = torch.where(lengths <= start, torch.zeros_like(lengths), ramp)
    return factor * torch.where(lengths > max_length, torch.full_like(lengths, -1.0), penalty)


def solved_length_cost(scores: torch.Tensor, lengths: torch.Tensor, max_new_tokens: int, cost: float
                       ) -> torch.Tensor:
    """A length cost on solved samples, subtracted from the reward: cost · L / L_max where the score is 1, else 0.
    scores, lengths: (N, G) -> (N, G).

    The outcome reward pays a direct solution and one that backs off a right move and searches on alike; a policy
    that cannot check its own arithmetic then drifts toward doubting every move (docs/learning.md, "Why GRPO lowers
    held-out accuracy"). Charging solved samples for their length breaks that tie without paying failures for
    giving up early."""
    return cost * (scores >= 1).to(lengths.dtype) * lengths.float() / max_new_tokens


# -- trees of samples: node values and segment advantages -------------------------------------------------------------
# A tree of samples is given by `parents`: node 0 is the root (the prompt, parent −1), every other node a segment of
# tokens whose parent comes before it (parents[i] < i); a leaf (a node without children) ends a completion and carries
# its outcome reward, `rewards[i]` (None for inner nodes).


def tree_values(parents: Sequence[int], rewards: Sequence[float | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """V(n) = the mean outcome of the leaves under n, and L(n) = their number (TreeRL, Hou et al. 2025, arXiv
    2506.11902, §3.2: a node's value is estimated by the leaves it leads to). (n,) each, float and long."""
    n = len(parents)
    if n != len(rewards) or n == 0 or parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(parents) if i):
        raise ValueError("a tree needs parents[0] = -1, parents[i] in [0, i) and one reward slot per node")
    children = [0] * n
    for p in parents[1:]:
        children[p] += 1
    total, leaves = [0.0] * n, [0] * n
    for i in reversed(range(n)):  # children come after their parents: one backward sweep sums every subtree
        if children[i] == 0:
            if rewards[i] is None:
                raise ValueError(f"leaf {i} has no reward")
            total[i], leaves[i] = total[i] + float(rewards[i]), leaves[i] + 1
        if i:
            total[parents[i]] += total[i]
            leaves[parents[i]] += leaves[i]
    count = torch.tensor(leaves)
    return torch.tensor(total) / count, count


def treerl_advantages(parents: Sequence[int], rewards: Sequence[float | None]) -> torch.Tensor:
    """TreeRL's segment advantages (Hou et al. 2025, arXiv 2506.11902, Eq. 4–5): the global advantage V(n) − V(root)
    plus the local one V(n) − V(parent(n)), scaled by 1/√L(n) (L(n): the leaves under n; TreeRL trains every leaf's
    sequence, so a shared segment appears L(n) times and the scale leaves it √L(n) of weight). The root (the prompt)
    gets 0. (n,)."""
    values, leaves = tree_values(parents, rewards)
    parent = torch.tensor([max(p, 0) for p in parents])
    advantages = (2 * values - values[0] - values[parent]) / leaves.float().sqrt()
    advantages[0] = 0.0
    return advantages


def treerpo_advantages(parents: Sequence[int], rewards: Sequence[float | None], eps: float = 1e-4) -> torch.Tensor:
    """TreeRPO (Yang et al. 2025, arXiv 2506.05183, §3): GRPO within each group of siblings, Â(n) = (V(n) − mean_s V)
    / (std_s V + ε) over the children s of n's parent (unbiased std, as `grpo_advantages`); an only child and the root
    get 0. (n,)."""
    values, _ = tree_values(parents, rewards)
    advantages = torch.zeros(len(parents))
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(parents[1:], start=1):
        groups.setdefault(p, []).append(i)
    for members in groups.values():
        if len(members) > 1:
            advantages[members] = grpo_advantages(values[members][None], eps)[0]
    return advantages


def vineppo_advantages(reward: float, values: Sequence[float]) -> list[float]:
    """VinePPO (Kazemnejad et al. 2024, arXiv 2410.01679, Eq. 5): Â_k = r_k + V̂(s_{k+1}) − V̂(s_k) with the values
    V̂(s_k) of the states before each of a chain's T steps estimated by Monte-Carlo rollouts from them, the outcome R as
    the last step's reward and V̂ = 0 after it: `step_gae` with λ = 0. Returns T advantages."""
    return step_gae(reward, values, lam=0.0)
