"""Batched sampling from the project's own model with a KV cache: n samples per prompt, stop strings, logprobs.

One `generate` call left-pads its prompts, prefills each distinct prompt once, replicates the cache rows for the n
samples, then decodes one token per step for the whole batch. Rows that finish are dropped from the batch and the cache
is compacted, so the batch shrinks as sequences end: on CPU, where a step costs in proportion to the batch, that and a
small per-step overhead are where the speed comes from; each step runs decode.py's fused step (one QKV and one gate-up
product per layer). Sampling is temperature scaling plus nucleus (top-p) filtering (Holtzman et al. 2020, "The
Curious Case of Neural Text Degeneration"); temperature 0 is greedy.

With a `PrefixCache` (prefix_cache.py; `prefix_cache_tokens` > 0), a later prompt that starts with a kept sequence
prefills only the rest: what tree search, which re-sends each path at every depth, needs. The rows of calls with stop
strings (step-wise generation: every tree search) are kept; those of plain sampling (best-of-N, RL rollouts,
evaluation), which nothing extends, are not unless `prefix_cache.store_plain` (copying them cost such calls 14-20 %). At
least a prompt's last token is always prefilled (its logits start the decoding).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

import torch

from searchlearn.policy.decode import decode_step, fused_weights
from searchlearn.policy.model import LlamaForCausalLM
from searchlearn.policy.prefix_cache import Hit, Layout, PrefixCache
from searchlearn.policy.static_decode import StaticDecoder
from searchlearn.policy.streams import row_keys, uniforms
from searchlearn.types import Completion, SamplingParams


def sample_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, u: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row from softmax(logits / T) restricted to the top-p nucleus (argmax when T = 0).

    Nucleus sampling (Holtzman et al. 2020) keeps the smallest set of most likely tokens whose mass reaches top_p.
    The draw is by inverse CDF: one uniform per row (`u` (B, 1) in [0, 1), from the row's own stream, streams.py;
    None: torch's global generator) and a binary search of the cumulative distribution, far cheaper on CPU than
    `torch.multinomial` (which draws one exponential variate per vocabulary entry).
    Returns (tokens (B,), logprobs (B,)), the logprob under the raw model distribution (T = 1, no filtering), which is
    what learners need as log π(a | s).
    """
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, V)
    if temperature == 0:
        tokens = logp.argmax(-1)
    else:
        probs = torch.softmax(logits.float() / temperature, dim=-1)  # (B, V)
        order = None
        if top_p < 1:
            probs, order = probs.sort(dim=-1, descending=True)
            probs[probs.cumsum(-1) - probs >= top_p] = 0.0  # mass of more likely tokens already reaches top_p
        cdf = probs.cumsum(-1)  # (B, V)
        u = torch.rand(cdf.shape[0], 1, device=cdf.device) if u is None else u.to(cdf.device)
        u = u * cdf[:, -1:]  # (B, 1)
        tokens = torch.searchsorted(cdf, u, right=True).clamp_max_(cdf.shape[1] - 1).squeeze(1)  # first cdf > u
        if order is not None:
            tokens = order.gather(-1, tokens[:, None]).squeeze(1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(1)


def compaction_order(keep: list[int]) -> list[int]:
    """A `KVCache.select` index keeping rows `keep` (sorted): survivors past the new end fill the holes before it,
    so only those move. E.g. keep [0, 2, 3, 5] of 6 -> [0, 5, 2, 3]."""
    n, kept = len(keep), set(keep)
    holes = [i for i in range(n) if i not in kept]
    tail = [j for j in keep if j >= n]
    order = list(range(n))
    for hole, j in zip(holes, tail):
        order[hole] = j
    return order


_TOKEN_TEXTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> [decode([t]) for t in ...]


def token_texts(tokenizer, vocab: int) -> list[str]:
    """`tokenizer.decode([t])` for every t < vocab, computed once per tokenizer and shared by every engine and stop
    tuple (0.33 s for a 151k-token byte-level BPE; scanning it for a stop tuple then takes ~6 ms). A fast tokenizer's
    `decode_batch` is no faster (measured), so the engine's own decode contract is used as is."""
    try:
        texts = _TOKEN_TEXTS.get(tokenizer)
    except TypeError:  # not weak-referenceable: no per-tokenizer cache
        texts = None
    if texts is None or len(texts) < vocab:
        texts = [tokenizer.decode([t]) for t in range(vocab)]
        try:
            _TOKEN_TEXTS[tokenizer] = texts
        except TypeError:
            pass
    return texts


def stop_token_ids(tokenizer, vocab: int | None, stops: tuple[str, ...]) -> frozenset[int]:
    """Ids (below the model's `vocab`) of the tokens whose text contains a stop string: a set lookup per sampled
    token (the vocabulary is decoded once per tokenizer, `token_texts`)."""
    vocab = min(getattr(tokenizer, "vocab_size", None) or 1 << 62, vocab or 1 << 62)
    texts = token_texts(tokenizer, vocab)[:vocab]
    return frozenset(t for t, text in enumerate(texts) if any(s in text for s in stops))


class Engine:
    """generate(prompt_ids, SamplingParams) -> list[Completion], prompt-major (all n samples of prompt 0 first).

    `last_prefill_tokens` / `last_generated_tokens` count the tokens the last call prefilled (each distinct prompt once
    per batch chunk, less what the prefix cache supplied) and sampled (every sampled token, an ending eos included
    although it is not returned) — the compute ledger's inputs. `max_batch` caps the rows decoded together; `eos_ids`
    overrides the tokenizer's eos (pass `()` to never stop at eos, e.g. for benchmarks). `prefix_cache_tokens` > 0
    keeps up to that many tokens of finished sequences' K/V for reuse (`self.prefix_cache`, LRU; 0 = off). `fused`
    decodes with fused projections (decode.py); False runs the model's own forward each step (the reference path).
    `graphs` decodes fused steps on static shapes replayed from CUDA graphs (static_decode.py); None: on a CUDA
    device. On a CPU, True runs the same static-shape steps eagerly.
    """

    def __init__(
        self,
        model: LlamaForCausalLM,
        tokenizer,
        device: str | torch.device = "cpu",
        max_batch: int = 256,
        eos_ids: Iterable[int] | None = None,
        prefix_cache_tokens: int = 0,
        fused: bool = True,
        graphs: bool | None = None,
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        if eos_ids is None:
            eos = getattr(tokenizer, "eos_id", None)
            eos_ids = () if eos is None else (eos,) if isinstance(eos, int) else eos
        self.eos_ids = frozenset(eos_ids)
        self.pad_id = getattr(tokenizer, "pad_id", None) or 0
        self.last_prefill_tokens = 0
        self.last_generated_tokens = 0
        self._stop_ids: dict[tuple[str, ...], frozenset[int]] = {}
        self.prefix_cache = PrefixCache(prefix_cache_tokens) if prefix_cache_tokens > 0 else None
        self.fused = fused
        self.graphs = fused and (self.device.type == "cuda" if graphs is None else graphs)

    # -- stop strings -------------------------------------------------------------------------------------------
    def stop_token_ids(self, stops: tuple[str, ...]) -> frozenset[int]:
        """`stop_token_ids` for this engine's tokenizer and model, cached per tuple."""
        if stops not in self._stop_ids:
            self._stop_ids[stops] = stop_token_ids(self.tokenizer, self.model.config.vocab_size, stops)
        return self._stop_ids[stops]

    def _text_hit(self, tokens: list[int], stops: tuple[str, ...], window: int) -> bool:
        """Whether a stop string (possibly spanning tokens) is in the decoded text of the last `window` tokens."""
        tail = self.tokenizer.decode(tokens[-window:])
        return any(s in tail for s in stops)

    # -- generation ---------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompt_ids: list[list[int]], params: SamplingParams,
                 on_stop: Callable[[int, list[int]], list[int] | None] | None = None,
                 budgets: list[int] | None = None) -> list[Completion]:
        """Sample params.n completions of every prompt, prompt-major.

        Same seed, prompts and params -> same completions, and a prompt's samples do not depend on the other prompts
        of the call (each row draws from its own stream, streams.py), up to float rounding of the logits.

        `on_stop(row, tokens)`: called when row `row` (prompt-major, as returned) reaches a stop string; None ends the
        row there ("stop"), a list of ids goes on: the ids are fed to the model as the row's next tokens (forced, not
        sampled: logprob 0.0, `mask` False), then sampling resumes. Multi-turn episodes run this way in one call,
        rows answering tool calls while the others decode (env/rollout.py); forced tokens count against
        `max_new_tokens` and are charged as generated tokens (each is one decode step).

        `budgets` (one per prompt): a prompt's rows end ("length") after min(budget, params.max_new_tokens) tokens,
        e.g. a tree rollout's branch, whose prefix already spent part of the chains' budget.
        """
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("every prompt needs at least one token")
        if budgets is not None and (len(budgets) != len(prompt_ids) or min(budgets, default=1) < 1):
            raise ValueError(f"budgets: one per prompt ({len(prompt_ids)}), each >= 1")
        self.last_prefill_tokens = self.last_generated_tokens = 0
        cache = self.prefix_cache
        if cache is not None:
            cache.validate(self.model)  # cached K/V of other weights are dropped
        # Rows are kept for reuse when the call generates steps (stop strings): what tree search extends next.
        store = cache is not None and (any(params.stop) or cache.store_plain)
        rows = [p for p in range(len(prompt_ids)) for _ in range(params.n)]  # row -> prompt index, prompt-major
        keys = row_keys(prompt_ids, params.n, params.seed) if params.temperature > 0 else None  # (R, 2)
        limits = [min(params.max_new_tokens, budgets[p]) if budgets else params.max_new_tokens for p in rows]
        out: list[Completion] = []
        for start in range(0, len(rows), self.max_batch):
            chunk = slice(start, start + self.max_batch)
            callback = None if on_stop is None else (lambda r, tokens, start=start: on_stop(start + r, tokens))
            out += self._generate_chunk(prompt_ids, rows[chunk], params, None if keys is None else keys[chunk], store,
                                        callback, limits[chunk])
        return out

    def _generate_chunk(self, prompt_ids, rows: list[int], params: SamplingParams, keys: torch.Tensor | None,
                        store_rows: bool, on_stop: Callable | None, limits: list[int]) -> list[Completion]:
        model, device, prefixes = self.model, self.device, self.prefix_cache
        weights = fused_weights(model) if self.fused else None
        # Prefill each distinct prompt once: reused prefixes right-aligned in slots [0, C), the rest of each prompt
        # (its suffix) left-padded to a common length S after them (prefix_cache.Layout). Without reuse C = 0.
        row_of: dict[tuple[int, ...], int] = {}  # token ids -> prefill row: equal prompts are prefilled once
        slot = {p: row_of.setdefault(tuple(prompt_ids[p]), len(row_of)) for p in dict.fromkeys(rows)}  # prompt -> row
        distinct = [list(k) for k in row_of]  # token id lists, first-seen order
        lengths = [len(k) for k in distinct]
        hits = [prefixes.lookup(k, len(k) - 1) if prefixes else Hit(0) for k in distinct]
        layout = Layout([h.length for h in hits], [n - h.length for n, h in zip(lengths, hits)])
        U, S = len(distinct), layout.S
        steps = max(limits)  # limits: per chunk row, the tokens it may generate
        cache = model.new_cache(U, layout.C + S + steps)
        if prefixes:
            prefixes.place(cache, hits)
        ids = torch.full((U, S), self.pad_id, dtype=torch.long)
        mask = torch.zeros(U, S, dtype=torch.long)
        for i, (k, s) in enumerate(zip(distinct, layout.suffix)):
            ids[i, S - s :] = torch.as_tensor(k[lengths[i] - s :])
            mask[i, S - s :] = 1
        ids, mask = ids.to(device), mask.to(device)
        offset = torch.tensor(layout.cached, device=device)[:, None]  # (U, 1)
        positions = (mask.cumsum(-1) - 1).clamp_min(0) + offset  # (U, S): real tokens at their prompt positions
        padded = min(layout.suffix) < S
        logits = model(ids, positions, mask if padded else None, cache, logits_to_keep=1)[:, -1]  # (U, V)
        self.last_prefill_tokens += sum(layout.suffix)

        # Replicate each prompt's cache row for its samples.
        source = torch.tensor([slot[p] for p in rows], device=device)  # (R,)
        if len(rows) != U:
            cache.select(source)
            logits = logits[source]  # (R, V)
        next_pos = torch.tensor([lengths[slot[p]] for p in rows], device=device)  # (R,) position of the next token
        if self.graphs:  # (B,) ids and positions -> (B, V) logits of the next token, appending to the cache
            step_fn = StaticDecoder(model, weights, cache, graphs=device.type == "cuda")
        elif weights is not None:
            step_fn = lambda ids, pos, cache: decode_step(model, ids, pos, cache, weights)  # noqa: E731
        else:  # the reference path: the model's own forward
            step_fn = lambda ids, pos, cache: model(ids[:, None], pos[:, None], cache=cache)[:, -1]  # noqa: E731

        stops = tuple(s for s in params.stop if s)
        stop_ids = self.stop_token_ids(stops) if stops else frozenset()
        text_stops = tuple(s for s in stops if len(s) > 1)  # a multi-character string can span tokens
        window = 4 * max(map(len, text_stops), default=0) + 2  # tokens to decode: ≥ 1 char each (4 bytes worst case)
        tokens: list[list[int]] = [[] for _ in rows]
        logprobs: list[list[float]] = [[] for _ in rows]
        masks: list[list[bool]] | None = None if on_stop is None else [[] for _ in rows]
        forced: list[list[int]] = [[] for _ in rows]  # ids on_stop asked to feed next, per chunk row (reversed)
        fresh = [0] * len(rows)  # where each row's own text starts after its last forced id (stops are not sought in it)
        reasons = ["length"] * len(rows)
        active = list(range(len(rows)))  # batch row j decodes chunk row active[j]

        def store(batch_rows: list[int], generated: int) -> None:  # keep finished rows' K/V for later prompts
            items = []
            for j in batch_rows:
                r = active[j]
                i = slot[rows[r]]
                items.append((distinct[i] + tokens[r][:generated], j, layout.slots(i, generated)))
            prefixes.insert_many(cache, items)

        for step in range(steps):
            u = None if keys is None else uniforms(keys, step)  # (B, 1): each row's own draw
            chosen, chosen_logp = sample_tokens(logits, params.temperature, params.top_p, u)  # (B,), (B,)
            self.last_generated_tokens += len(active)
            pushed = {j: forced[r].pop() for j, r in enumerate(active) if forced[r]}  # rows fed an answer's next id
            if pushed:
                index = torch.tensor(list(pushed), device=device)
                chosen[index] = torch.tensor(list(pushed.values()), device=device)
            keep = []
            for j, (t, lp) in enumerate(zip(chosen.tolist(), chosen_logp.tolist())):
                r = active[j]
                if j in pushed:
                    tokens[r].append(t)
                    logprobs[r].append(0.0)
                    masks[r].append(False)
                    fresh[r] = len(tokens[r])
                    if step + 1 < limits[r]:
                        keep.append(j)
                    continue
                if t in self.eos_ids:
                    reasons[r] = "eos"
                    continue
                tokens[r].append(t)
                logprobs[r].append(lp)
                if masks is not None:
                    masks[r].append(True)
                if t in stop_ids or (text_stops and self._text_hit(tokens[r][fresh[r]:], text_stops, window)):
                    answer = None if on_stop is None else on_stop(r, list(tokens[r]))
                    if answer is None:
                        reasons[r] = "stop"
                        continue
                    forced[r] = list(reversed(answer))
                if step + 1 < limits[r]:  # else the row's budget is spent: it ends at "length"
                    keep.append(j)
            if not keep or step == steps - 1:
                if store_rows:  # the K/V of this step's tokens were never computed: `step` generated tokens are cached
                    store(list(range(len(active))), step)
                break
            if len(keep) < len(active):  # drop finished rows: the batch shrinks (survivors from the end fill holes)
                if store_rows:
                    store(sorted(set(range(len(active))) - set(keep)), step)
                order = compaction_order(keep)
                cache.select(order)
                index = torch.tensor(order, device=device)
                chosen, next_pos = chosen[index], next_pos[index]
                keys = None if keys is None else keys[index]
                active = [active[j] for j in order]
            logits = step_fn(chosen, next_pos, cache)  # (B, V)
            next_pos = next_pos + 1
        return [
            Completion(
                prompt_index=p,
                token_ids=tokens[r],
                text=self.tokenizer.decode(tokens[r]),
                logprobs=logprobs[r],
                finish_reason=reasons[r],
                mask=None if masks is None else masks[r],
            )
            for r, p in enumerate(rows)
        ]
