"""Stand-in policies for testing and benchmarking searchers: `ScriptedPolicy`, whose text is scripted (the Policy
contract without a model, for exact expectations), and `stepping_policy`, a random model that writes short steps.

`script(prompt, n) -> n texts`. A text ending in `EOS` ("<eos>") ends the sequence there; otherwise the first stop
string ends it, and `max_new_tokens` (or the prompt's own budget) cuts it. Each character is one token (its code
point; `tokenizer` encodes so) with logprob `logprob(prompt, text)` spread evenly. Every call is recorded (`calls`,
`prompts`, `params`, `budgets`) and charged to `ledger` as the engine counts: every returned token plus one for an
eos.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.policy import LocalPolicy
from searchlearn.types import Completion, Ledger, SamplingParams

EOS = "<eos>"


class CharTokenizer:
    """One token per character, its code point: the scripted policy's tokens."""

    @staticmethod
    def encode(text: str) -> list[int]:
        return [ord(c) for c in text]

    @staticmethod
    def decode(ids: list[int]) -> str:
        return "".join(map(chr, ids))


class ScriptedPolicy:
    tokenizer = CharTokenizer()

    def __init__(self, script: Callable[[str, int], list[str]],
                 logprob: Callable[[str, str], float] | None = None, n_params: int = 1000):
        self.script = script
        self.logprob = logprob or (lambda prompt, text: -0.1 * len(text))
        self.n_params = n_params
        self.ledger = Ledger()
        self.calls = 0
        self.prompts: list[list[str]] = []
        self.params: list[SamplingParams] = []
        self.budgets: list[list[int] | None] = []
        self.last_generated_tokens = 0

    def generate(self, prompts: list[str], params: SamplingParams, budgets: list[int] | None = None
                 ) -> list[Completion]:
        out = []
        for i, prompt in enumerate(prompts):
            texts = self.script(prompt, params.n)
            if len(texts) != params.n:
                raise ValueError(f"script gave {len(texts)} texts for n={params.n}")
            cap = min(params.max_new_tokens, budgets[i]) if budgets else params.max_new_tokens
            out += [self._complete(i, prompt, text, params, cap) for text in texts]
        self.calls += 1
        self.prompts.append(list(prompts))
        self.params.append(params)
        self.budgets.append(None if budgets is None else list(budgets))
        self.last_generated_tokens = sum(c.num_tokens + (c.finish_reason == "eos") for c in out)
        self.ledger.charge_policy(self.last_generated_tokens, sum(len(p) + 1 for p in prompts), self.n_params)
        return out

    def _complete(self, index: int, prompt: str, text: str, params: SamplingParams, cap: int) -> Completion:
        finish = "length"
        if text.endswith(EOS):
            text, finish = text[: -len(EOS)], "eos"
        cuts = [(text.find(s) + len(s)) for s in params.stop if s and s in text]
        if cuts:
            text, finish = text[: min(cuts)], "stop"
        if len(text) > cap or (len(text) == cap and finish == "eos"):
            text, finish = text[:cap], "length"
        each = self.logprob(prompt, text) / len(text) if text else 0.0
        return Completion(index, [ord(c) for c in text], text, [each] * len(text), finish)


def stepping_policy(tokenizer, hidden: int = 32, layers: int = 2, intermediate: int = 64, newline_bias: float = 3.0,
                    eos_bias: float = 1.5, seed: int = 0) -> LocalPolicy:
    """A seeded random Llama (4 query heads, 2 key/value heads) whose lm_head adds `newline_bias` to "\n" and
    `eos_bias` to eos, so that its steps are short and its paths end: a real engine under a search, no training."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden,
                                         intermediate_size=intermediate, num_hidden_layers=layers,
                                         num_attention_heads=4, num_key_value_heads=2))
    head = torch.nn.Linear(hidden, tokenizer.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[tokenizer.vocab["\n"]] = newline_bias
        head.bias[tokenizer.eos_id] = eos_bias
    model.lm_head = head
    return LocalPolicy(model, tokenizer)
