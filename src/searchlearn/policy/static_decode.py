"""Decode steps on static shapes, replayed from CUDA graphs on a GPU: what removes the launch cost per kernel.

A decode step of a small model on a GPU is bound by kernel launches, not by the GPU's arithmetic: each of the few
hundred kernels of a step runs for microseconds and costs about as much to launch from Python. A CUDA graph records
the kernels of one step once and replays them with one launch (vLLM and SGLang decode this way). A graph fixes every
shape and address, so here a step runs on static buffers:
  - the batch is padded to a bucket b (1, 2, 4, …, the call's rows): rows past the live ones compute on stale data
    that nothing reads (compaction, kv_cache.py, moves live rows to the front of the same buffer, in place);
  - attention reads the first T slots of the cache, T the next power of two ≥ the filled length (at least 64, at most
    the cache's), under the key mask: slots past the length are masked, their scores replaced, so what they hold
    does not matter once it is finite (they are zeroed when the decoder is made);
  - the new keys and values are written at a slot held in a (1,) tensor, so the replay writes where the step is.
Batch only shrinks and length only grows within a call, so a call captures at most (batch buckets + length buckets)
graphs, each on first use. Sampling stays outside the graph (per-row streams, stop tables: engine.py).

On a CPU there are no graphs: the same static steps run eagerly, for the tests' parity (no faster: docs/speed.md).
"""

from __future__ import annotations

import torch

from searchlearn.policy.decode import Fused, fused_forward
from searchlearn.policy.kv_cache import KVCache

MIN_SLOTS = 64  # the smallest length bucket


def bucket(n: int, limit: int, smallest: int = 1) -> int:
    """The smallest power of two ≥ max(n, smallest), at most `limit`. E.g. bucket(5, 64) = 8, bucket(70, 96) = 96."""
    if n > limit:
        raise ValueError(f"{n} exceeds the static buffer's {limit}")
    return min(limit, 1 << (max(n, smallest) - 1).bit_length())


class StaticDecoder:
    """`decoder(token_ids, positions, cache)` = `decode_step(model, token_ids, positions, cache, weights)` (up to
    float rounding), computed on the static buffers of `cache` as it is when the decoder is made (after prefill and
    replication): later `cache.select` calls must only shrink it (in place), as the engine's compaction does.

    `graphs`: capture each (batch, length) bucket in a CUDA graph on first use and replay it (a CUDA cache only);
    False runs the same static-shape step eagerly. `graph_count` counts the captures. With graphs, the logits a call
    returns are a view of the graph's output buffer, valid until the next call. A graph holds the addresses of the
    weights and of `model.inv_freq`: the decoder lives for one `generate` call, during which neither is replaced
    (learners update weights between calls), and graphs are therefore captured again by each call.
    """

    def __init__(self, model, weights: Fused, cache: KVCache, graphs: bool):
        if graphs and cache.kv.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA cache, got {cache.kv.device}")
        self.model, self.weights, self.graphs = model, weights, graphs
        self.kv, self.key_mask = cache.kv, cache.key_mask  # (2, layers, B, H_kv, T_max, D), (B, T_max): fixed
        self.kv[..., cache.length :, :].zero_()  # unwritten slots: finite, so a masked slot's value times 0 is 0
        B, device = cache.batch_size, cache.kv.device
        self.ids = torch.zeros(B, dtype=torch.long, device=device)  # the graph's inputs, copied in before a replay
        self.positions = torch.zeros(B, dtype=torch.long, device=device)
        self.at = torch.zeros(1, dtype=torch.long, device=device)  # the slot this step writes
        self._steps: dict[tuple[int, int], object] = {}  # (b, T) -> a callable returning (b, V) logits
        self._pool = torch.cuda.graph_pool_handle() if graphs else None  # one memory pool for all the graphs
        self.graph_count = 0

    def __call__(self, token_ids: torch.Tensor, positions: torch.Tensor, cache: KVCache) -> torch.Tensor:
        n, t = token_ids.shape[0], cache.length
        if cache.kv.data_ptr() != self.kv.data_ptr():
            raise ValueError("the cache was reallocated after the StaticDecoder was made (it may only shrink)")
        cache.write_mask(None, 1)  # this step's slot is real for the live rows (a view of self.key_mask)
        b, T = self.bucket_of(n, t)
        self.ids[:n].copy_(token_ids)
        self.positions[:n].copy_(positions)
        self.at.fill_(t)
        step = self._steps.get((b, T)) or self._make(b, T)
        cache.length = t + 1
        return step()[:n]

    def bucket_of(self, n: int, length: int) -> tuple[int, int]:
        """The (batch, length) bucket of a step of n rows onto `length` filled slots."""
        return bucket(n, self.kv.shape[2]), bucket(length + 1, self.kv.shape[4], MIN_SLOTS)

    def _forward(self, b: int, T: int) -> torch.Tensor:
        """One step of the first b rows over the first T slots, on the static buffers: (b, V) logits."""
        ks = [k[:b, :, :T] for k in self.kv[0].unbind(0)]  # per layer (b, H_kv, T, D): views at fixed addresses
        vs = [v[:b, :, :T] for v in self.kv[1].unbind(0)]
        return fused_forward(self.model, self.weights, self.ids[:b], self.positions[:b], ks, vs, self.at,
                             self.key_mask[:b, :T])

    def _make(self, b: int, T: int):
        if not self.graphs:
            step = lambda: self._forward(b, T)  # noqa: E731
        else:  # warm up on a side stream (as torch.cuda.graphs asks), then record; the replay redoes the same writes
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._forward(b, T)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                logits = self._forward(b, T)  # (b, V): the graph's output buffer, rewritten by each replay

            def step(graph=graph, logits=logits):
                graph.replay()
                return logits

            self.graph_count += 1
        self._steps[(b, T)] = step
        return step
