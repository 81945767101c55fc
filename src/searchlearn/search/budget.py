"""What a search may spend, and the per-problem compute ledger of a batched search.

A budget is per problem and has two parts:
  * `n`, the strategy's size knob in best-of-N units (BoN: N samples; beam: N candidates per depth, N // width beams
    kept; DVTS: N // width subtrees of width `width`; MCTS: the token cap below buys the simulations; revision: N
    attempts as N // sequential chains × sequential attempts);
  * `max_tokens`, a hard cap on the tokens a search generates for one problem (every sampled token, an ending eos,
    lookahead steps and rollouts included). None means n × max_new_tokens: the most best-of-N at that n could spend.
A searcher never exceeds the cap: before each engine call it admits a problem's rows only while
rows × (the call's max_new_tokens) fits in what is left, which bounds the worst case, not the expected one.

One engine call serves many problems, so `Accounts.generate` splits the policy ledger's increase among them: generated
tokens exactly (each completion's tokens, plus one for a sampled eos, as the engine counts them), prefilled tokens in
proportion to the prompt characters each problem sent, and FLOPs in proportion to each problem's tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from searchlearn.types import Completion, Ledger, SamplingParams


@dataclass(frozen=True)
class Budget:
    n: int  # the strategy's size in best-of-N units (see the module docstring)
    max_tokens: int | None = None  # generated tokens per problem at most; None = n × max_new_tokens

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"budget n must be >= 1, got {self.n}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"budget max_tokens must be >= 1, got {self.max_tokens}")

    def cap(self, max_new_tokens: int) -> int:
        """Generated tokens one problem may use."""
        return self.max_tokens if self.max_tokens is not None else self.n * max_new_tokens


def generated_tokens(completion: Completion) -> int:
    """Tokens the engine sampled for `completion`: its tokens plus the eos it drew (not returned) when it ended so."""
    return completion.num_tokens + (completion.finish_reason == "eos")


class Accounts:
    """One ledger and one token allowance per problem of a batched search."""

    def __init__(self, n_problems: int, cap: int):
        self.cap = cap
        self.ledgers = [Ledger() for _ in range(n_problems)]
        self.calls = 0  # engine calls made, all problems together
        self.scorer_calls = 0

    def remaining(self, problem: int) -> int:
        return self.cap - self.ledgers[problem].generated_tokens

    def afford(self, problem: int, rows: int, max_new_tokens: int) -> bool:
        """Whether `rows` more sampled sequences of up to `max_new_tokens` each fit in the problem's allowance."""
        return rows * max_new_tokens <= self.remaining(problem)

    def generate(self, policy, prompts: Sequence[str], owners: Sequence[int], params: SamplingParams
                 ) -> list[Completion]:
        """One engine call for all `prompts` (prompt i belongs to problem owners[i]); each problem is charged its part.

        The prompts go to the engine shortest first, so that each batch chunk the engine decodes together has prompts
        of similar length (less left padding in its KV cache); the completions come back in the caller's order."""
        before = policy.ledger.copy()
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        shuffled = policy.generate([prompts[i] for i in order], params)
        spent = policy.ledger.since(before)
        completions: list[Completion] = [None] * len(shuffled)  # type: ignore[list-item]
        for position, i in enumerate(order):
            for j in range(params.n):
                c = shuffled[position * params.n + j]
                c.prompt_index = i
                completions[i * params.n + j] = c
        self.calls += 1
        generated: dict[int, int] = {}
        chars: dict[int, int] = {}
        for c in completions:
            owner = owners[c.prompt_index]
            generated[owner] = generated.get(owner, 0) + generated_tokens(c)
        for prompt, owner in zip(prompts, owners):
            chars[owner] = chars.get(owner, 0) + len(prompt)
        total_chars = sum(chars.values()) or 1
        total_tokens = spent.generated_tokens + spent.prefilled_tokens
        for owner in chars:
            ledger = self.ledgers[owner]
            prefilled = spent.prefilled_tokens * chars[owner] / total_chars
            ledger.generated_tokens += generated.get(owner, 0)
            ledger.prefilled_tokens += prefilled
            if total_tokens:
                ledger.policy_flops += spent.policy_flops * (generated.get(owner, 0) + prefilled) / total_tokens
        return completions

    def score(self, scorer, problems: Sequence, prefixes: Sequence, owners: Sequence[int]) -> list[list[float]]:
        """One scorer call; a scorer that runs a model (it has a `ledger`) is charged to the problems in proportion
        to the characters of the prefixes each one sent."""
        ledger = getattr(scorer, "ledger", None)
        before = ledger.copy() if ledger is not None else None
        scores = scorer(list(problems), list(prefixes))
        self.scorer_calls += 1
        if len(scores) != len(prefixes):
            raise ValueError(f"scorer returned {len(scores)} score lists for {len(prefixes)} prefixes")
        if ledger is not None:
            spent = ledger.since(before)
            if spent.reward_tokens or spent.reward_flops:
                sizes: dict[int, int] = {}
                for prefix, owner in zip(prefixes, owners):
                    sizes[owner] = sizes.get(owner, 0) + max(1, _chars(prefix))
                total = sum(sizes.values())
                for owner, size in sizes.items():
                    share = spent.scaled(size / total)
                    self.ledgers[owner].reward_tokens += share.reward_tokens
                    self.ledgers[owner].reward_flops += share.reward_flops
        return scores


def _chars(prefix) -> int:
    return len(prefix) if isinstance(prefix, str) else sum(len(s.text) for s in prefix)
