"""The implicit PRM's network: a trainable copy πφ of the policy beside a frozen one, πref (Yuan et al. 2024).

Trained on outcome labels only, with the outcome reward parameterized as r_φ(y) = β log πφ(y|x)/πref(y|x) (BCE
against the verifier), it gives process rewards for free: q_t = β Σ_{i≤t} log πφ(y_i|y_<i)/πref(y_i|y_<i) is an
exponential average of the outcome rewards of the continuations of y_≤t (their Proposition 3.1), so σ(q_t) at a
step's end scores the step. PRIME (Cui et al. 2025) trains it online during RL. The loss is the ORM's, so
`models.RewardModel` wraps this body under the kind "implicit".
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from searchlearn.policy.model import LlamaForCausalLM, sequence_logprobs


class ImplicitBody(nn.Module):
    """(B, T) ids -> (B, T) q_t: β times the running sum of log πφ/πref over the completion's tokens (0 before it)."""

    def __init__(self, policy_model: LlamaForCausalLM, beta: float = 0.05):
        super().__init__()
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.net = copy.deepcopy(policy_model)  # πφ: what trains (`models.freeze` finds its blocks and head)
        self.ref = copy.deepcopy(policy_model).eval().requires_grad_(False)  # πref: the policy, frozen
        self.beta = beta

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                starts: torch.Tensor | None = None) -> torch.Tensor:
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        logp = sequence_logprobs(self.net, input_ids, mask)  # (B, T-1): column t-1 scores token t
        with torch.no_grad():
            logp_ref = sequence_logprobs(self.ref, input_ids, mask)
        ratio = nn.functional.pad(logp - logp_ref, (1, 0))  # (B, T): column t scores token t
        if starts is not None:  # only the completion's tokens count (the prompt is the same for every completion)
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            ratio = ratio * (positions[None, :] >= starts[:, None].to(positions.device))
        return self.beta * ratio.cumsum(-1)  # (B, T)
