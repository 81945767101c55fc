"""Monte-Carlo values of step prefixes: the policy's own estimate of how often each state leads to a correct answer.

V̂(s_k) = (1/K) Σ_j 1[verifier accepts prefix_k + rollout_j], K rollouts from the state after step k (Math-Shepherd's
soft label, Wang et al. 2024; VinePPO's value estimate, Kazemnejad et al. 2024, arXiv 2410.01679, §4). Unbiased and
free of any learned model, at the price of K rollouts per step: what VinePPO spends instead of training a critic.
A prefix that already answers is valued by the verifier alone. The rollouts are the policy's generated tokens
(its ledger), not reward-model tokens.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from searchlearn.reward.labels import mc_labels
from searchlearn.reward.process import Prefix, prefix_text
from searchlearn.types import Ledger, Problem


class MonteCarloScorer:
    """Per-step MC values from `rollouts` completions of each step prefix, sampled from `policy` (one batched call).
    The rollouts' seed is a function of the prefixes scored, so a resumed run draws what an uninterrupted one did."""

    def __init__(self, policy, task, rollouts: int = 4, max_new_tokens: int = 288, temperature: float = 1.0,
                 within_budget: bool = False):
        if rollouts < 1:
            raise ValueError(f"rollouts must be >= 1, got {rollouts}")
        self.policy, self.task, self.rollouts = policy, task, rollouts
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.within_budget = within_budget  # max_new_tokens bounds prefix + rollout (mc_labels)
        self.ledger = Ledger()  # no reward-model tokens: the rollouts are charged to the policy's ledger

    def with_policy(self, policy) -> MonteCarloScorer:
        """The same scorer rolling out with another policy (a data-parallel rank's replica)."""
        return MonteCarloScorer(policy, self.task, self.rollouts, self.max_new_tokens, self.temperature,
                                self.within_budget)

    def __call__(self, problems: Sequence[Problem], prefixes: Sequence[Prefix]) -> list[list[float]]:
        texts = [prefix_text(p) for p in prefixes]
        seed = zlib.crc32("\0".join(p.id + "\1" + t for p, t in zip(problems, texts)).encode())
        labels = mc_labels(self.policy, self.task, problems, texts, m=self.rollouts, temperature=self.temperature,
                           max_new_tokens=self.max_new_tokens, seed=seed, step_only=False,
                           within_budget=self.within_budget)
        return [label.soft for label in labels]
