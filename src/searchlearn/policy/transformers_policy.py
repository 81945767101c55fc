"""The generic fallback: the Policy contract over any transformers causal LM, with `generate` underneath.

Slower than the project's engine (no prompt sharing across the n samples, no batch compaction), but it covers every
architecture transformers knows. Semantics match `LocalPolicy`: prompt-major completions, temperature 0 = greedy,
nucleus sampling without top-k, logprobs under the raw model distribution (before temperature), finish reasons
"eos" (the eos token is not returned) / "stop" (the stop string is kept) / "length", and every token charged to
`self.ledger`. The model's own generation_config (repetition penalties, top-k, ...) is deliberately ignored.
"""

from __future__ import annotations

from pathlib import Path

import torch

from searchlearn.policy.policy import encode_prompts, next_token_logprobs, pad_batch
from searchlearn.policy.weights import weight_files
from searchlearn.types import Completion, Ledger, SamplingParams


def non_embedding_parameters(model) -> int:
    """Parameters outside the input embedding and the (untied) output projection: the N of FLOPs ≈ 2·N per token."""
    params = {id(p): p for p in model.parameters()}
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None:
            for p in module.parameters():
                params.pop(id(p), None)
    return sum(p.numel() for p in params.values())


class TransformersPolicy:
    """generate(prompts, params) -> completions, prompt-major, via `model.generate`; logprobs with gradients."""

    def __init__(self, model, tokenizer, device: str = "cpu", max_batch: int = 64):
        self.model = model.to(device).train(False)  # inference mode (dropout off)
        self.tokenizer = tokenizer
        self.device = device
        self.max_batch = max_batch
        self.ledger = Ledger()
        self.n_params = non_embedding_parameters(model)
        self.eos_ids = tuple(getattr(tokenizer, "eos_ids", None) or
                             ([tokenizer.eos_id] if tokenizer.eos_id is not None else []))
        from transformers import GenerationConfig

        # transformers fills whatever a call leaves unset from the model's generation_config (repetition penalties,
        # top-k, ...): replace it by a neutral one so that SamplingParams alone decide.
        self.model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_id, pad_token_id=tokenizer.pad_id,
                                                        eos_token_id=list(self.eos_ids) or None)

    @classmethod
    def load(cls, directory: str | Path, tokenizer, device: str = "cpu", dtype: torch.dtype | None = torch.float32):
        """`AutoModelForCausalLM` from a local directory (no network)."""
        from transformers import AutoModelForCausalLM

        weight_files(Path(directory))  # a clear error naming the missing files, before transformers' own
        model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=dtype or "auto", local_files_only=True)
        return cls(model, tokenizer, device=device)

    def encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts)

    # -- generation ---------------------------------------------------------------------------------------------
    def _generation_config(self, params: SamplingParams):
        from transformers import GenerationConfig

        sampling = params.temperature > 0
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens, do_sample=sampling, num_return_sequences=params.n,
            temperature=params.temperature if sampling else None, top_p=params.top_p if sampling else None,
            top_k=0 if sampling else None, return_dict_in_generate=True, output_logits=True,
            pad_token_id=self.tokenizer.pad_id, eos_token_id=list(self.eos_ids) or None,
            bos_token_id=self.tokenizer.bos_id,
        )

    @torch.inference_mode()
    def generate(self, prompts: list[str], params: SamplingParams, budgets: list[int] | None = None
                 ) -> list[Completion]:
        """params.n completions per prompt, prompt-major; same seed and inputs -> same completions."""
        return self.generate_ids(self.encode_prompts(prompts), params, budgets)

    @torch.inference_mode()
    def generate_ids(self, prompt_ids: list[list[int]], params: SamplingParams,
                     budgets: list[int] | None = None) -> list[Completion]:
        """`generate` from token ids; `budgets`: each prompt's own cap on new tokens (a longer row is cut there)."""
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("every prompt needs at least one token")
        per_chunk = max(1, self.max_batch // params.n)
        devices = [torch.device(self.device)] if torch.device(self.device).type == "cuda" else []
        out: list[Completion] = []
        with torch.random.fork_rng(devices=devices):  # seed without disturbing the caller's RNG
            if params.seed is not None:
                torch.manual_seed(params.seed)
            for start in range(0, len(prompt_ids), per_chunk):
                out += self._generate_chunk(prompt_ids[start : start + per_chunk], start, params,
                                            None if budgets is None else budgets[start : start + per_chunk])
        return out

    def _generate_chunk(self, prompt_ids: list[list[int]], offset: int, params: SamplingParams,
                        budgets: list[int] | None = None) -> list[Completion]:
        P = max(map(len, prompt_ids))
        ids = torch.full((len(prompt_ids), P), self.tokenizer.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompt_ids):  # left padding: every row's next token is at column P
            ids[i, P - len(p) :] = torch.tensor(p)
            mask[i, P - len(p) :] = 1
        stops = tuple(s for s in params.stop if s)
        extra = {"stop_strings": list(stops), "tokenizer": self.tokenizer.tok} if stops else {}
        result = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                     generation_config=self._generation_config(params), **extra)
        new = result.sequences[:, P:].tolist()  # (R, G) with R = rows = prompts × n
        logits = torch.stack(result.logits, dim=1).float()  # (R, G, V)
        chosen = result.sequences[:, P:, None]  # (R, G, 1)
        logp = (logits.gather(-1, chosen).squeeze(-1) - logits.logsumexp(-1)).tolist()  # (R, G)
        window = 4 * max(map(len, stops), default=0) + 2
        completions = []
        for r, row in enumerate(new):
            tokens, reason = [], "length"
            for t in row[: None if budgets is None else budgets[r // params.n]]:
                if t in self.eos_ids:
                    reason = "eos"
                    break
                tokens.append(t)
                if stops and any(s in self.tokenizer.decode(tokens[-window:]) for s in stops):
                    reason = "stop"
                    break
            p = r // params.n
            self.ledger.charge_policy(len(tokens) + (reason == "eos"), len(prompt_ids[p]), self.n_params)
            completions.append(Completion(prompt_index=offset + p, token_ids=tokens,
                                          text=self.tokenizer.decode(tokens), logprobs=logp[r][: len(tokens)],
                                          finish_reason=reason))
        return completions

    # -- learning -----------------------------------------------------------------------------------------------
    def logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[torch.Tensor]:
        """log π(completion | prompt) per token, one (len(completion),) tensor per pair, with gradients."""
        ids, mask = pad_batch([p + c for p, c in zip(prompt_ids, completion_ids)], self.tokenizer.pad_id, self.device)
        logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (B, T-1, V)
        logp = logits.gather(-1, ids[:, 1:, None]).squeeze(-1) - logits.logsumexp(-1)  # (B, T-1)
        return [logp[i, len(p) - 1 : len(p) - 1 + len(c)] for i, (p, c) in enumerate(zip(prompt_ids, completion_ids))]

    @torch.no_grad()
    def next_token_logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]],
                            at: list[list[int]] | None = None) -> list[torch.Tensor]:
        """log π(· | prompt + completion[:j]) for each j in at[i] (default: after the whole completion), one
        (len(at[i]), V) tensor per pair, without gradients (as `LocalPolicy.next_token_logprobs`)."""
        vocab = self.model.get_output_embeddings().weight.shape[0]
        return next_token_logprobs(lambda ids, mask: self.model(input_ids=ids, attention_mask=mask).logits,
                                   prompt_ids, completion_ids, at, self.tokenizer.pad_id, self.device, vocab)
