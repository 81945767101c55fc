"""Data parallelism inside a learner: each rank takes its rows of the global batch, gradients are summed over ranks.

A learner normalizes its loss by a global count (`all_sum` of the local counts, e.g. completion tokens), so the
summed gradient is exactly the one-process gradient of the global batch (up to float summation order); every rank
then clips the same norm and takes the same optimizer step, and the weights stay identical without broadcasting
them. Without an initialized process group (one process) every function here is the identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def rank_world() -> tuple[int, int]:
    """(this process's rank, the number of ranks); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def my_rows(n: int) -> slice:
    """This rank's contiguous share of n rows: rank r of W takes [r·n/W, (r+1)·n/W)."""
    r, w = rank_world()
    return slice(r * n // w, (r + 1) * n // w)


def all_sum(x: float) -> float:
    """x summed over ranks (a float64 all-reduce)."""
    if rank_world()[1] == 1:
        return float(x)
    t = torch.tensor([float(x)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())


def sum_gradients(params: list[torch.nn.Parameter]) -> None:
    """Every parameter's gradient summed over ranks, in place, as one flat all-reduce (a parameter no rank's loss
    reached counts as zero)."""
    if rank_world()[1] == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset : offset + g.numel()].view_as(g)  # a view of the reduced buffer: no second copy
        offset += g.numel()


def gather(x: torch.Tensor) -> torch.Tensor:
    """Every rank's `x` concatenated along dim 0 in rank order (their first dimensions may differ)."""
    if rank_world()[1] == 1:
        return x
    parts: list = [None] * rank_world()[1]
    dist.all_gather_object(parts, x)
    return torch.cat(parts)


def local_rows(index: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """The entries of global row indices `index` that fall in this rank's rows [start, stop), made local."""
    return index[(index >= start) & (index < stop)] - start


def all_sum_dict(values: dict[str, float]) -> dict[str, float]:
    """Each key's value summed over the ranks that have it (ranks may hold different keys)."""
    if rank_world()[1] == 1:
        return dict(values)
    parts: list = [None] * rank_world()[1]
    dist.all_gather_object(parts, values)
    out: dict[str, float] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = out.get(k, 0.0) + v
    return out
