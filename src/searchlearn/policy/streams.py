"""Per-row random streams: a sample's draws depend on what it is, never on what it is batched with.

Row r of an engine call draws its t-th uniform as hash(key_r, t), a counter-based generator (Salmon et al. 2011,
"Parallel Random Numbers: As Easy as 1, 2, 3", use the same idea at scale) built from MurmurHash3's 32-bit finalizer.
The key comes from the call's seed, the prompt's token ids, which copy of an identical prompt in the call the row
belongs to, and the sample index, so a prompt sampled alone, in a large batch, in another chunk of `max_batch`, or on
another worker (distributed/pool.py shards problems across workers) draws the same tokens.
"""

from __future__ import annotations

import hashlib
from array import array

import torch

_M32 = 0xFFFFFFFF


def row_keys(prompt_ids: list[list[int]], n: int, seed: int | None) -> torch.Tensor:
    """(len(prompt_ids)·n, 2) int64 keys in [0, 2^32), prompt-major (the engine's row order). `seed` None: random keys
    from torch's global generator (not reproducible, as an unseeded call should be)."""
    if seed is None:
        return torch.randint(0, 1 << 32, (len(prompt_ids) * n, 2), dtype=torch.int64)
    copies: dict[tuple[int, ...], int] = {}
    keys = []
    for ids in prompt_ids:
        copy = copies[tuple(ids)] = copies.get(tuple(ids), -1) + 1  # k-th identical prompt of the call
        base = hashlib.blake2b(array("q", ids).tobytes(), digest_size=8, key=f"{seed}|{copy}".encode()[:64])
        for j in range(n):
            h = base.copy()
            h.update(j.to_bytes(4, "little"))
            word = int.from_bytes(h.digest(), "little")
            keys.append((word & _M32, word >> 32))
    return torch.tensor(keys, dtype=torch.int64).view(-1, 2)


def _mul32(h: torch.Tensor, c: int) -> torch.Tensor:
    """h · c mod 2^32 for h in [0, 2^32) without int64 overflow (two 16-bit halves of c)."""
    return (h * (c & 0xFFFF) + (((h * (c >> 16)) & 0xFFFF) << 16)) & _M32


def _fmix32(h: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's finalizer: a bijection of [0, 2^32) whose output bits each depend on every input bit."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def uniforms(keys: torch.Tensor, step: int) -> torch.Tensor:
    """(B, 1) float32 uniforms in [0, 1) for draw `step` of rows with `keys` (B, 2); 24 bits of resolution."""
    h = _fmix32((keys[:, 0] + 0x9E3779B9 * (step + 1)) & _M32)
    h = _fmix32(h ^ keys[:, 1])
    return ((h >> 8).to(torch.float32) * (1.0 / (1 << 24)))[:, None]
