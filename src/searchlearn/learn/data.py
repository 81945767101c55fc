"""Seeded data order: which examples, problems and minibatches a step uses, as a pure function of (seed, step).

That purity is what makes resume exact: a restarted run asks for step s and gets what the uninterrupted run got.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def stream(n_items: int, start: int, count: int, seed: int) -> list[int]:
    """Items start..start+count of the item stream: epochs of seeded permutations of range(n_items), read one after
    another."""
    out: list[int] = []
    while len(out) < count:
        epoch, offset = divmod(start + len(out), n_items)
        perm = np.random.default_rng([seed, epoch]).permutation(n_items)
        out.extend(perm[offset : offset + count - len(out)].tolist())
    return out


def batch_indices(n_examples: int, step: int, cfg, lengths: Sequence[int] | None = None) -> np.ndarray:
    """Indices of step `step`'s batch of cfg.batch_size examples, from the stream seeded by cfg.seed.

    With `lengths`, each group of `cfg.length_buckets` consecutive batches is drawn from the stream together, sorted by
    length and cut into batches taken in a seeded order: the same examples per group, far less padding.
    """
    bs, group = cfg.batch_size, cfg.length_buckets if lengths is not None else 1
    first, position = divmod(step, group)
    items = stream(n_examples, first * group * bs, group * bs, cfg.seed)
    if group == 1:
        return np.asarray(items)
    items.sort(key=lambda i: lengths[i])
    order = np.random.default_rng([cfg.seed, 1 << 20, first]).permutation(group)
    k = int(order[position])
    return np.asarray(items[k * bs : (k + 1) * bs])


def problem_indices(n_problems: int, step: int, per_step: int, seed: int) -> list[int]:
    """Step `step`'s training problems for online RL: `per_step` consecutive items of the problem stream."""
    return stream(n_problems, step * per_step, per_step, seed)


def minibatches(n: int, size: int, seed: int, step: int, epoch: int) -> list[torch.Tensor]:
    """A seeded shuffle of range(n) cut into ceil(n/size) minibatches (size ≤ 0: one batch of everything)."""
    perm = torch.as_tensor(np.random.default_rng([seed, step, epoch, 7]).permutation(n))
    size = n if size <= 0 else size
    return [perm[i : i + size] for i in range(0, n, size)] if n else []
