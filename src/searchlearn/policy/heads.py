"""Scalar heads on the policy's decoder: PPO's critic and every learned reward model's network.

`LlamaForCausalLM.forward` returns only logits, so instead of reaching into it a head *is* a LlamaForCausalLM whose
lm_head is an nn.Linear(D, 1): the same forward, returning (B, T, 1). Its decoder is a copy of the policy's (a
separate critic, as in InstructGPT) or, with `share_backbone=True`, the policy's own (value gradients then reach the
policy's weights).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from searchlearn.policy.model import LlamaForCausalLM


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
        """The parameters the head adds: the head, plus the decoder when it is not shared."""
        return list(self.net.lm_head.parameters()) + ([] if self.shared else list(self.net.model.parameters()))

    def own_state(self) -> dict[str, torch.Tensor]:
        names = {id(p) for p in self.own_parameters()}
        return {k: v.detach().contiguous().cpu() for k, v in self.named_parameters() if id(v) in names}
