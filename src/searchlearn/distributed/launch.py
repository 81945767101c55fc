"""`data_parallel(fn, world, *args)`: fn(*args) on `world` processes placed by Ray, joined in one gloo group.

Each rank is a Ray actor (one CPU, `threads` torch threads); rank 0 picks a free port on its node and every rank
joins `tcp://ADDRESS:PORT` (`torch.distributed`, gloo on CPU). Inside fn, `ddp.rank_world()` says who is who and the
shared `Trainer` sums gradients and lets rank 0 alone write checkpoints. Returns each rank's result, rank 0 first.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import ray
import torch
import torch.distributed as dist


class Rank:
    def __init__(self, threads: int):
        torch.set_num_threads(threads)

    def address(self) -> tuple[str, int]:
        """This node's address and a free port on it (the group's rendezvous, asked of rank 0)."""
        with socket.socket() as s:
            s.bind(("", 0))
            return ray.util.get_node_ip_address(), s.getsockname()[1]

    def join(self, rank: int, world: int, address: str, port: int) -> None:
        dist.init_process_group("gloo", init_method=f"tcp://{address}:{port}", rank=rank, world_size=world)

    def run(self, fn: Callable, args: tuple):
        try:
            return fn(*args)
        finally:
            dist.destroy_process_group()


def data_parallel(fn: Callable, world: int, *args, threads: int = 1) -> list:
    """fn(*args) on `world` ranks (see the module docstring); Ray must be running (`WorkerPool` or `ray.init`)."""
    # No CPU reservation: the ranks train while the rollout workers (which hold the CPUs) wait, and SPREAD places
    # them across nodes.
    actor = ray.remote(Rank).options(num_cpus=0, scheduling_strategy="SPREAD")
    ranks = [actor.remote(threads) for _ in range(world)]
    try:
        address, port = ray.get(ranks[0].address.remote())
        ray.get([r.join.remote(i, world, address, port) for i, r in enumerate(ranks)])
        return ray.get([r.run.remote(fn, args) for r in ranks])
    finally:
        for r in ranks:
            ray.kill(r)


def adopt(model: torch.nn.Module, results: list, log: Callable[[dict], None]):
    """The driver's side of a data-parallel training call whose ranks returned (result, records, rank 0's weights as
    arrays): the weights loaded into `model`, the records replayed into `log`; returns rank 0's result."""
    from searchlearn.distributed.weights import from_arrays

    out, records, arrays = results[0]
    with torch.no_grad():
        model.load_state_dict(from_arrays(arrays))
    model.eval()
    for record in records:
        log(record)
    return out
