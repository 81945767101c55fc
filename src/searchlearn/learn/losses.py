"""Pure losses: tensors in, (loss, detached stats) out. No logging, no optimisers, no processes."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sft_loss(logits: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Token-level negative log-likelihood on completion tokens only (the prompt is context, not a target).

    L = −(1/|M|) Σ_{t∈M} log π(x_{t+1} | x_≤t), with M the completion positions.

    logits: (B, T, V) predictions for positions 1..T (already shifted); targets: (B, T); loss_mask: (B, T) in {0, 1}.
    """
    nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none").view_as(targets)
    mask = loss_mask.to(nll.dtype)
    n_tokens = mask.sum().clamp(min=1)
    loss = (nll * mask).sum() / n_tokens
    return loss, {"loss": loss.item(), "tokens": int(mask.sum().item())}
