"""Problems split across workers, and `map_problems`: what every stage calls to run a batched function on problems.

`fn(problems, policy, *args) -> list` (one item per problem, in order) is a searcher, an evaluation's sampling or
an RL rollout's sampling. With no pool active it runs here on the caller's policy; with one (`use_pool`), each worker
runs it on its shard with its own replica and the items come back in problem order. Problems with the same prompt
stay on one worker and in their order, so every row keeps the random stream it has in one process
(policy/streams.py): `--workers 1` and `--workers N` sample the same tokens.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from searchlearn.distributed.ddp import rank_world
from searchlearn.types import Problem

_ACTIVE: list = []  # the pool `map_problems` uses (innermost `use_pool`), if any


@dataclass(frozen=True)
class WithPolicy:
    """An argument built where `fn` runs, from that process's policy: `factory(*args, policy)` (a scorer that reads
    the policy, e.g. `WithPolicy(make_scorer, ("selfeval", task))`)."""

    factory: Callable
    args: tuple = ()

    def build(self, policy) -> Any:
        return self.factory(*self.args, policy)


_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # policy -> {WithPolicy: what it built}


def bind(args: Sequence, policy) -> list:
    """`args` with every `WithPolicy` built from `policy` (once per policy: a learned scorer loads its model once)."""
    built = _BUILT.setdefault(policy, {})
    out = []
    for a in args:
        if isinstance(a, WithPolicy):
            if a not in built:
                built[a] = a.build(policy)
            a = built[a]
        out.append(a)
    return out


def shards(keys: Sequence[str], k: int) -> list[list[int]]:
    """Indices of `keys` in k order-preserving shards of near-equal size; equal keys share a shard. Groups of equal
    keys (in first-seen order) are dealt out contiguously: shard s takes groups until it holds ≈ (s+1)·n/k items."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    out: list[list[int]] = [[] for _ in range(k)]
    taken, s = 0, 0
    for members in groups.values():
        while s < k - 1 and taken >= (s + 1) * len(keys) / k:
            s += 1
        out[s] += members
        taken += len(members)
    return [sorted(shard) for shard in out]


def active_pool():
    return _ACTIVE[-1] if _ACTIVE else None


def learner_ranks() -> int:
    """How many data-parallel ranks a learner called here should train on: the active pool's size when it has more
    than one worker and this process is not already a rank; else 1 (train here)."""
    pool = active_pool()
    return len(pool.workers) if pool is not None and len(pool.workers) > 1 and rank_world()[1] == 1 else 1


@contextmanager
def use_pool(pool) -> Iterator:
    """Within the block, `map_problems` runs on `pool`'s workers."""
    _ACTIVE.append(pool)
    try:
        yield pool
    finally:
        _ACTIVE.pop()


def map_problems(fn: Callable, problems: Sequence[Problem], policy, *args) -> list:
    """fn(problems, policy, *args) on the active pool's workers (sharded), or here without one."""
    pool = active_pool()
    if pool is None or not problems:
        return fn(problems, policy, *bind(args, policy))
    return pool.map(fn, problems, policy, args)
