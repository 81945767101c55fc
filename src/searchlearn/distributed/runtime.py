"""`workers(n, address)`: the pool every stage inside the block runs on, started and stopped around it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from searchlearn.distributed.shard import use_pool


@contextmanager
def workers(n: int, address: str | None = None) -> Iterator:
    """`n` workers on Ray for the block (`address`: an existing cluster's), or nothing at all for one local worker:
    `--workers 1` starts no Ray and runs every stage in this process."""
    if n == 1 and not address:
        yield None
        return
    from searchlearn.distributed.pool import WorkerPool  # Ray is imported only when it is used

    with WorkerPool(n, address) as pool, use_pool(pool):
        yield pool
