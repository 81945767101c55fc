"""Prefix caching for the engine: keep the keys/values of finished sequences, reuse them for later prompts.

Tree search sends every path's whole text back to the engine at each depth; without a cache the engine prefills the
prompt and every earlier step again. This cache (the idea of vLLM's automatic prefix caching and SGLang's
RadixAttention; our own code) stores the K/V of each finished row in a radix tree over token ids: a node holds one
segment of tokens and the pool slots of their K/V, and shared prefixes are stored once. A lookup walks the tree along
a prompt's ids, O(len(prompt)), and returns the longest common prefix with *any* stored sequence (the K/V of a
sequence's prefix is the K/V of that prefix: attention is causal). Insertions split a node where a new sequence
diverges from it (the slot list is cut, no K/V move). The K/V live in one preallocated pool of `max_tokens` token
slots (allocated at the first insertion), so storing the rows that finish at one decoding step is one gather and one
scatter, with no allocation per row; when the pool is full, the least recently used leaves are evicted (a lookup or
insertion touches every node on its path, so a node is never older than its descendants).

Cached K/V belong to the weights that computed them: `validate(model)` clears the cache when any parameter changed
(each parameter's storage and its in-place version counter, which optimizers and `load_state_dict` bump). Code that
writes weights behind autograd's back (`p.data.copy_`, fused optimizers) must call `clear()` itself.

The engine's batch layout with reused prefixes (`PrefixCache.place`, `Layout`): slots [0, C) hold each row's cached
prefix right-aligned, slots [C, C + S) its suffix (the prompt tokens still to prefill) right-aligned, then decoding
appends. The gaps are masked keys (zeroed, so no garbage reaches the softmax) and positions are explicit, so RoPE sees
the true token positions: attention over the cached prefix plus the suffix equals attention over the full prompt.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from searchlearn.policy.kv_cache import KVCache


def default_tokens(model: torch.nn.Module, budget_bytes: int = 256 << 20, cap: int = 1 << 16) -> int:
    """The default cache size: as many tokens as fit in `budget_bytes` of K/V in the weights' dtype, at most `cap`
    (65,536 tokens = 256 MiB for the demo model; 21,845 for a 0.5B Qwen2 in bfloat16)."""
    c, w = model.config, next(model.parameters())
    per_token = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * w.element_size()
    return max(1, min(cap, budget_bytes // per_token))


class _Node:
    __slots__ = ("tokens", "slots", "parent", "children", "last_used")

    def __init__(self, tokens: list[int], slots, parent: _Node | None, last_used: int):
        self.tokens = tokens  # the segment's token ids
        self.slots = slots  # (len(tokens),) pool slots holding their K/V; None at the root
        self.parent = parent  # None at the root and once evicted
        self.children: dict[int, _Node] = {}  # first token of the child's segment -> child
        self.last_used = last_used


@dataclass
class Hit:
    """The reusable prefix of one prompt: `length` tokens and the pool slots of their K/V, (length,)."""

    length: int
    slots: torch.Tensor | None = None


class PrefixCache:
    """Radix tree token ids -> K/V, held in a pool of `max_tokens` token slots (allocated at the first insertion, so
    storing costs one copy and no allocation), least recently used leaves evicted to make room."""

    def __init__(self, max_tokens: int, store_plain: bool = False):
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.max_tokens = max_tokens
        self.store_plain = store_plain  # the engine also keeps rows of calls without stop strings (see engine.py)
        self.pool: torch.Tensor | None = None  # (2, layers, H_kv, max_tokens + 1, D): keys then values; the last
        # slot stays zero (what gaps in a batch's prefix region read)
        self.hits = self.lookups = self.reused_tokens = 0  # statistics since creation
        self._weights: tuple | None = None  # the parameters' (storage, version, dtype) the stored K/V belong to
        self.clear()

    def clear(self) -> None:
        self.root = _Node([], None, None, 0)
        self._free = None if self.pool is None else torch.arange(self.max_tokens, device=self.pool.device)
        self._nfree = self.max_tokens  # free slots are _free[:_nfree] (a stack)
        self._heap: list = []  # (last_used, n, node) per leaf, lazily invalidated: an entry is live while it matches
        self._pending: list = []  # copies not yet made by `insert_many`: (pool slots, cache row, [(start, stop)])
        self._pushes = 0
        self._clock = 0

    @property
    def tokens(self) -> int:
        """Tokens stored."""
        return self.max_tokens - self._nfree

    def validate(self, model: torch.nn.Module) -> None:
        """Clear the cache if `model`'s parameters changed since the last call (see the module docstring); drop the
        pool if it does not fit the model's K/V (layers, heads, width, dtype, device)."""
        weights = tuple((p.data_ptr(), p._version, p.dtype) for p in model.parameters())
        if weights != self._weights:
            c, w = model.config, model.lm_head.weight
            shape = (2, c.num_hidden_layers, c.num_key_value_heads, self.max_tokens + 1, c.head_dim)
            if self.pool is not None and (self.pool.shape, self.pool.dtype, self.pool.device) != (shape, w.dtype,
                                                                                                   w.device):
                self.pool = None
            self.clear()
            self._weights = weights

    # -- lookup -------------------------------------------------------------------------------------------------
    def _walk(self, ids: Sequence[int]) -> tuple[list[tuple[_Node, int]], int]:
        """The nodes along `ids` with how many of each one's tokens match, and the total matched length."""
        ids = ids if isinstance(ids, list) else list(ids)  # segments are lists: compared slice by slice
        path, node, i, n = [], self.root, 0, len(ids)
        while i < n:
            child = node.children.get(ids[i])
            if child is None:
                break
            seg = child.tokens
            if ids[i : i + len(seg)] == seg:
                path.append((child, len(seg)))
                i += len(seg)
                node = child
                continue
            j = 1  # the first token matched (children are keyed by it)
            while j < len(seg) and i + j < n and seg[j] == ids[i + j]:
                j += 1
            path.append((child, j))
            i += j
            break
        return path, i

    def _touch(self, path: list[tuple[_Node, int]]) -> None:
        self._clock += 1
        for node, _ in path:
            node.last_used = self._clock
        if path and not path[-1][0].children:
            self._push(path[-1][0])

    def lookup(self, ids: Sequence[int], limit: int) -> Hit:
        """The longest prefix of `ids`, at most `limit` tokens, that the cache holds (marks it used)."""
        self.lookups += 1
        path, matched = self._walk(ids)
        length = min(matched, limit)
        if length <= 0:
            return Hit(0)
        self._touch(path)
        pieces, left = [], length
        for node, count in path:
            take = min(count, left)
            pieces.append(node.slots[:take])
            left -= take
            if not left:
                break
        self.hits += 1
        self.reused_tokens += length
        return Hit(length, pieces[0] if len(pieces) == 1 else torch.cat(pieces))

    def place(self, cache: KVCache, hits: list[Hit]) -> int:
        """Write each row's reused K/V right-aligned into slots [0, C) of an empty batch cache (gaps read the zero
        slot and are masked), one gather for all rows; returns C."""
        C = max(h.length for h in hits)
        if C == 0:
            return 0
        device = cache.key_mask.device
        index = torch.full((len(hits), C), self.max_tokens, dtype=torch.long, device=device)  # (B, C)
        for i, h in enumerate(hits):
            if h.length:
                index[i, C - h.length :] = h.slots
        two, layers, heads, _, dim = self.pool.shape
        region = self.pool[:, :, :, index.view(-1)].view(two, layers, heads, len(hits), C, dim)
        lengths = torch.tensor([h.length for h in hits], device=device)
        real = torch.arange(C, device=device)[None, :] >= C - lengths[:, None]  # (B, C)
        cache.load_prefix(region.transpose(2, 3), real)  # (2, layers, B, H_kv, C, D)
        return C

    # -- insertion and eviction ---------------------------------------------------------------------------------
    def insert(self, ids: list[int], cache: KVCache, row: int, slots: list[tuple[int, int]]) -> int:
        """Store sequence `ids` whose K/V sit in `cache` row `row`, token by token in the slot ranges `slots`
        ([start, stop) each, in token order). Returns the number of tokens added. See `insert_many`."""
        return self.insert_many(cache, [(ids, row, slots)])

    def insert_many(self, cache: KVCache, rows: list[tuple[list[int], int, list[tuple[int, int]]]]) -> int:
        """Store each (ids, cache row, slot ranges) as `insert` says, copying only the tokens the tree does not hold
        yet, in one gather for all rows; least recently used leaves are evicted to make room (never the nodes on
        the sequence's own path: if those fill the pool, that sequence is not stored). Returns the tokens added."""
        if self.pool is None:  # allocated at the first insertion: a cache that never stores costs no memory
            two, layers, _, heads, _, dim = cache.kv.shape
            self.pool = cache.kv.new_empty((two, layers, heads, self.max_tokens + 1, dim))
            self.pool[:, :, :, -1] = 0
            self.clear()
        added = 0
        for ids, row, ranges in rows:
            path, matched = self._walk(ids)
            self._touch(path)
            n = len(ids) - matched
            if n == 0:
                continue
            if self._nfree < n:
                self._flush(cache)  # the pending copies land before their slots can be evicted and reused
                if not self._make_room(n, protect={id(node) for node, _ in path}):
                    continue
            parent = self.root
            if path:
                node, count = path[-1]
                parent = node if count == len(node.tokens) else self._split(node, count)
            free = self._free[self._nfree - n : self._nfree].clone()
            self._nfree -= n
            self._pending.append((free, row, _skip(ranges, matched)))
            leaf = _Node(list(ids[matched:]), free, parent, self._clock)
            parent.children[leaf.tokens[0]] = leaf
            self._push(leaf)
            added += n
        self._flush(cache)
        return added

    def _flush(self, cache: KVCache) -> None:
        """Copy the pending rows' K/V from the batch cache into their pool slots: one gather, one scatter."""
        if not self._pending:
            return
        src = torch.cat([cache.kv[:, :, row, :, start:stop] for _, row, ranges in self._pending
                         for start, stop in ranges], dim=3)  # (2, layers, H_kv, N, D)
        self.pool.index_copy_(3, torch.cat([free for free, _, _ in self._pending]), src)
        self._pending = []

    def _split(self, node: _Node, j: int) -> _Node:
        """Cut `node`'s segment after j tokens; returns the new upper node (node keeps the rest, below it)."""
        upper = _Node(node.tokens[:j], node.slots[:j], node.parent, node.last_used)
        node.parent.children[upper.tokens[0]] = upper
        node.tokens, node.slots, node.parent = node.tokens[j:], node.slots[j:], upper
        upper.children[node.tokens[0]] = node
        return upper

    def _push(self, leaf: _Node) -> None:
        self._pushes += 1
        heapq.heappush(self._heap, (leaf.last_used, self._pushes, leaf))
        if len(self._heap) > 2 * self.max_tokens + 1024:  # drop stale entries (live ones: one per leaf at most)
            self._heap = [e for e in self._heap if e[2].parent is not None and not e[2].children
                          and e[0] == e[2].last_used]
            heapq.heapify(self._heap)

    def _make_room(self, n: int, protect: set[int]) -> bool:
        """Evict least recently used leaves (not those in `protect`) until n slots are free; False if impossible."""
        if n > self.max_tokens:
            return False
        kept = []
        while self._nfree < n and self._heap:
            entry = heapq.heappop(self._heap)
            used, _, leaf = entry
            if leaf.parent is None or leaf.children or used != leaf.last_used:
                continue  # stale: evicted, no longer a leaf, or touched since (a newer entry exists)
            if id(leaf) in protect:
                kept.append(entry)
                continue
            parent = leaf.parent
            del parent.children[leaf.tokens[0]]
            leaf.parent = None
            self._free[self._nfree : self._nfree + len(leaf.slots)] = leaf.slots
            self._nfree += len(leaf.slots)
            if parent is not self.root and not parent.children:
                self._push(parent)
        for entry in kept:
            heapq.heappush(self._heap, entry)
        return self._nfree >= n


def _skip(ranges: list[tuple[int, int]], skip: int) -> list[tuple[int, int]]:
    """The slot ranges of the tokens after the first `skip`."""
    out = []
    for start, stop in ranges:
        if skip < stop - start:
            out.append((start + skip, stop))
        skip = max(0, skip - (stop - start))
    return out


@dataclass
class Layout:
    """Where row i's tokens sit in a batch KV cache: cached prefix right-aligned in [0, C), suffix right-aligned in
    [C, C + S), generated tokens from C + S on."""

    cached: list[int]  # per row: prefix tokens reused from the cache
    suffix: list[int]  # per row: prompt tokens prefilled

    def __post_init__(self) -> None:
        self.C, self.S = max(self.cached), max(self.suffix)  # the widths of the two regions

    def slots(self, i: int, generated: int) -> list[tuple[int, int]]:
        """Cache slot ranges [start, stop) of row i's prompt and its first `generated` generated tokens, in token
        order."""
        C, S = self.C, self.S
        return [(C - self.cached[i], C), (C + S - self.suffix[i], C + S + generated)]
