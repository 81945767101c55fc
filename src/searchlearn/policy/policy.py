"""The Policy contract: text in, completions out, with every token charged to a compute ledger.

`LocalPolicy` is the fast path: the project's own model and KV-cache engine.
"""

from __future__ import annotations

from pathlib import Path

import torch

from searchlearn.policy.engine import Engine
from searchlearn.policy.model import LlamaForCausalLM
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.types import Completion, Ledger, SamplingParams


class LocalPolicy:
    """generate(prompts, params) -> completions (prompt-major, n per prompt), charged to `self.ledger`."""

    def __init__(self, model: LlamaForCausalLM, tokenizer: TaskTokenizer, device: str = "cpu", max_batch: int = 256):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.engine = Engine(self.model, tokenizer, device=device, max_batch=max_batch)
        self.ledger = Ledger()
        self.n_params = model.num_parameters(exclude_embeddings=True)

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> LocalPolicy:
        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory}: no config.json — not a searchlearn/Hugging Face checkpoint directory")
        return cls(LlamaForCausalLM.from_pretrained(directory), TaskTokenizer.load(directory), device=device)

    def encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        return [[self.tokenizer.bos_id] + ids for ids in self.tokenizer.encode_batch(prompts)]

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Completion]:
        completions = self.engine.generate(self.encode_prompts(prompts), params)
        self.ledger.charge_policy(self.engine.last_generated_tokens, self.engine.last_prefill_tokens, self.n_params)
        return completions

    def logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[torch.Tensor]:
        """log π(completion | prompt) per token, one (len(completion),) tensor per pair, with gradients."""
        from searchlearn.policy.model import sequence_logprobs

        seqs = [p + c for p, c in zip(prompt_ids, completion_ids)]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), self.tokenizer.pad_id, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        logp = sequence_logprobs(self.model, ids, mask)  # (B, T-1)
        return [logp[i, len(p) - 1 : len(p) - 1 + len(c)] for i, (p, c) in enumerate(zip(prompt_ids, completion_ids))]
