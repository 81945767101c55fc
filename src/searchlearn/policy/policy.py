"""The Policy contract: text in, completions out, with every token charged to a compute ledger.

`LocalPolicy` is the fast path: the project's own model and KV-cache engine. Its tokenizer is a `TaskTokenizer` or an
`HFTokenizer` (policy/hf_tokenizer.py); real checkpoints are loaded with `searchlearn.policy.hf.load_policy`, which
also returns the transformers-backed fallback for architectures the project's model does not cover.
"""

from __future__ import annotations

import torch

from searchlearn.policy.engine import Engine
from searchlearn.policy.model import LlamaForCausalLM, sequence_logprobs
from searchlearn.policy.prefix_cache import default_tokens
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.types import Completion, Ledger, SamplingParams


def encode_prompts(tokenizer, prompts: list[str]) -> list[list[int]]:
    """Token ids of each prompt, starting with BOS where the tokenizer uses one (`add_bos`, default True; TaskTokenizer
    always does) and the prompt does not already (a chat template may write the BOS text itself)."""
    bos = getattr(tokenizer, "bos_id", None)
    add = bos is not None and getattr(tokenizer, "add_bos", True)
    return [[bos] + ids if add and ids[:1] != [bos] else ids for ids in tokenizer.encode_batch(prompts)]


def pad_batch(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and mask (B, T), 1 = real token."""
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


def next_token_logprobs(logits_of, prompt_ids: list[list[int]], completion_ids: list[list[int]],
                        at: list[list[int]] | None, pad_id: int, device, vocab_size: int,
                        max_logits: int = 1 << 26) -> list[torch.Tensor]:
    """log π(· | prompt + completion[:j]) for each j in at[i] (default [len(completion)]): one (len(at[i]), V) float
    tensor per pair. `logits_of(ids (B, T), mask (B, T)) -> (B, T, V)`; the pairs go through it right-padded in
    chunks of at most `max_logits` logits (sorted by length), so a large vocabulary cannot exhaust memory."""
    at = [[len(c)] for c in completion_ids] if at is None else at
    seqs = [p + c for p, c in zip(prompt_ids, completion_ids)]
    for p, c, js in zip(prompt_ids, completion_ids, at):
        if any(not 0 <= j <= len(c) or len(p) + j < 1 for j in js):
            raise ValueError(f"positions {js} outside a completion of {len(c)} tokens after {len(p)} prompt tokens")
    out: list[torch.Tensor | None] = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop + 1 - start) * len(seqs[order[stop]]) * vocab_size <= max_logits:
            stop += 1
        chunk = order[start:stop]
        ids, mask = pad_batch([seqs[i] for i in chunk], pad_id, device)
        logits = logits_of(ids, mask)  # (B, T, V)
        for row, i in enumerate(chunk):
            index = torch.tensor([len(prompt_ids[i]) + j - 1 for j in at[i]], dtype=torch.long, device=logits.device)
            out[i] = torch.log_softmax(logits[row, index].float(), dim=-1)  # (K, V)
        start = stop
    return out  # type: ignore[return-value]


class LocalPolicy:
    """generate(prompts, params) -> completions (prompt-major, n per prompt), charged to `self.ledger`.

    `prefix_cache_tokens`: the engine keeps up to this many tokens of finished sequences' K/V and prefills only what
    a later prompt adds (tree search re-sends every path; policy/prefix_cache.py); 0 turns it off, None (default)
    sizes it to 256 MiB of K/V, at most 65,536 tokens (`prefix_cache.default_tokens`).
    """

    def __init__(self, model: LlamaForCausalLM, tokenizer: TaskTokenizer, device: str = "cpu", max_batch: int = 256,
                 prefix_cache_tokens: int | None = None):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        eos_ids = getattr(tokenizer, "eos_ids", None)  # an HFTokenizer may end turns with several ids
        self.engine = Engine(self.model, tokenizer, device=device, max_batch=max_batch, eos_ids=eos_ids,
                             prefix_cache_tokens=default_tokens(self.model) if prefix_cache_tokens is None
                             else prefix_cache_tokens)
        self.ledger = Ledger()
        self.n_params = model.num_parameters(exclude_embeddings=True)

    def engine_options(self) -> dict:
        """The engine settings a replica of this policy needs (`LocalPolicy(model, tokenizer, **options)`)."""
        cache = self.engine.prefix_cache
        return {"max_batch": self.engine.max_batch, "prefix_cache_tokens": cache.max_tokens if cache else 0}

    def encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts)

    def generate(self, prompts: list[str], params: SamplingParams, budgets: list[int] | None = None
                 ) -> list[Completion]:
        return self.generate_ids(self.encode_prompts(prompts), params, budgets=budgets)

    inline_tools = True  # generate_ids takes on_stop: multi-turn episodes run in one engine call (env/rollout.py)

    def generate_ids(self, prompt_ids: list[list[int]], params: SamplingParams, on_stop=None,
                     budgets: list[int] | None = None) -> list[Completion]:
        """`generate` from token ids (multi-turn rollouts append observation ids and never re-tokenize the past);
        `on_stop` answers a row's stop with ids fed to it next (engine.py), so episodes need no call per turn;
        `budgets`: each prompt's own cap on new tokens (below params.max_new_tokens)."""
        completions = self.engine.generate(prompt_ids, params, on_stop=on_stop, budgets=budgets)
        self.ledger.charge_policy(self.engine.last_generated_tokens, self.engine.last_prefill_tokens, self.n_params)
        return completions

    def logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[torch.Tensor]:
        """log π(completion | prompt) per token, one (len(completion),) tensor per pair, with gradients."""
        ids, mask = pad_batch([p + c for p, c in zip(prompt_ids, completion_ids)], self.tokenizer.pad_id, self.device)
        logp = sequence_logprobs(self.model, ids, mask)  # (B, T-1)
        return [logp[i, len(p) - 1 : len(p) - 1 + len(c)] for i, (p, c) in enumerate(zip(prompt_ids, completion_ids))]

    @torch.no_grad()
    def next_token_logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]],
                            at: list[list[int]] | None = None) -> list[torch.Tensor]:
        """log π(· | prompt + completion[:j]) for each j in at[i] (default: after the whole completion), one
        (len(at[i]), V) tensor per pair, without gradients: what a probe reads (reward/selfeval.py)."""
        return next_token_logprobs(lambda ids, mask: self.model(ids, attention_mask=mask), prompt_ids, completion_ids,
                                   at, self.tokenizer.pad_id, self.device, self.model.config.vocab_size)
