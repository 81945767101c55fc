"""The KV cache of incremental decoding: one preallocated key/value buffer for all layers and a key-validity mask.

The model writes each forward call's keys/values at the cache's `length`; the engine reindexes rows with `select`
(dropping finished sequences, or repeating a prefilled prompt for n samples) and reads/writes whole rows across all
layers at once for prefix caching (`kv`, `load_prefix`).
"""

from __future__ import annotations

import torch

from searchlearn.policy.llama_config import LlamaConfig


class KVCache:
    """Keys and values in one (2, layers, B, H_kv, T_max, D) buffer `kv` (`k[layer]`, `v[layer]` are its (B, H_kv,
    T_max, D) views), plus a (B, T_max) key-validity mask.

    All rows share one write position `length` (prompts are left-padded to a common length). `select(index)` reindexes
    rows: drop finished sequences (compaction, done in place) or repeat a prefilled prompt n times.
    """

    def __init__(self, config: LlamaConfig, batch_size: int, max_length: int, dtype=torch.float32, device="cpu"):
        shape = (2, config.num_hidden_layers, batch_size, config.num_key_value_heads, max_length, config.head_dim)
        self.kv = torch.empty(shape, dtype=dtype, device=device)
        self._views()
        self.key_mask = torch.zeros(batch_size, max_length, dtype=torch.bool, device=device)  # True = real token
        self.length = 0  # positions filled so far
        self.max_length = max_length
        self.padded = False  # whether any filled key is padding (then attention needs a mask)

    def _views(self) -> None:
        self.k = list(self.kv[0].unbind(0))  # per layer (B, H_kv, T_max, D), views of `kv`
        self.v = list(self.kv[1].unbind(0))

    @property
    def batch_size(self) -> int:
        return self.key_mask.shape[0]

    def write_mask(self, mask: torch.Tensor | None, num_new: int) -> torch.Tensor:
        """Record which of the `num_new` incoming positions are real; returns the (B, L) mask of all keys."""
        start, end = self.length, self.length + num_new
        if end > self.max_length:
            raise ValueError(f"KV cache overflow: {end} > max_length {self.max_length}")
        self.key_mask[:, start:end] = True if mask is None else mask.bool()
        self.padded = self.padded or (mask is not None and not bool(mask.bool().all()))
        return self.key_mask[:, :end]

    def load_prefix(self, kv: torch.Tensor, mask: torch.Tensor) -> None:
        """Fill slots [0, C) of an empty cache with (2, layers, B, H_kv, C, D) keys/values and their (B, C) validity
        mask (prefixes reused from a `PrefixCache`, see prefix_cache.py)."""
        if self.length:
            raise ValueError("load_prefix needs an empty cache")
        C = mask.shape[1]
        self.kv[..., :C, :] = kv
        self.write_mask(mask, C)
        self.length = C

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append (B, H_kv, T, D) keys/values at `length`; return views of everything cached, (B, H_kv, L, D)."""
        end = self.length + k.shape[2]
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def select(self, index: torch.Tensor | list[int]) -> None:
        """Keep rows `index`, in that order (repeats allowed): row i becomes old row index[i].

        Shrinking works in place and copies only the rows that move, so dropping k finished rows with the engine's
        `compaction_order` costs k row copies, not B. Growing (repeating prompts for n samples) reallocates.
        """
        index = torch.as_tensor(index, dtype=torch.long).tolist()
        n, L, grow = len(index), self.length, len(index) > self.batch_size
        moved = list(range(n)) if grow else [i for i, j in enumerate(index) if i != j]
        dst = torch.tensor(moved, dtype=torch.long, device=self.key_mask.device)
        src = torch.tensor([index[i] for i in moved], dtype=torch.long, device=self.key_mask.device)
        kv = self.kv.new_empty((*self.kv.shape[:2], n, *self.kv.shape[3:])) if grow else self.kv[:, :, :n]
        mask = self.key_mask.new_empty((n, self.max_length)) if grow else self.key_mask[:n]
        if moved:  # the right side is gathered into a temporary first, so in place is safe
            kv[:, :, dst, :, :L] = self.kv[:, :, src, :, :L]
            mask[dst, :L] = self.key_mask[src, :L]
        if grow:
            mask[:, L:] = False
        self.kv, self.key_mask = kv, mask
        self._views()
        self.padded = bool((~self.key_mask[:, :L]).any())
