"""Dense process rewards for the online learners: potential-based shaping with a process scorer's values.

Ng, Harada & Russell (1999): r′ = r + γ Φ(s′) − Φ(s) leaves the optimal policy unchanged (`reward/shaping.py`). A
state is the prompt plus the first k steps of a solution, s_k; Φ(s_{k+1}) is the scorer's score of step k (a PRM
trained on Monte-Carlo labels estimates exactly the value of the state a step leads to), and Φ(s_T) = 0 after the
last step: every rollout ends its episode (the learners bootstrap nothing after it), so the final step's score, the
one nearest the outcome, never enters.

PPO (`token_rewards`): the terms Φ(s_{k+1}) − Φ(s_k) (γ = 1), with Φ = α·score and Φ(s_0) = 0, are added on the
token that ends step k; the critic and token-level GAE do the rest (`ppo.prepare`'s `dense_reward`).

GRPO family (`token_advantages`): there is no critic, so the group's mean outcome stands for V(s_0) (GRPO's own
baseline) and V(s_k) = (1 − α)·mean_g R + α·score_{k−1} for k ≥ 1. Each step's advantage is GAE(λ) over steps of the
outcome with these values (`advantages.step_gae`: the shaped rewards summed with weights λ^l), and it is added to
the recipe's outcome advantage as a correction in reward units:
    Â_{i,k} = Â_i + GAE_k(R_i; V) − (R_i − mean_g R).
With Dr. GRPO (no division by the group's std) that is exactly GAE; with α = 0 and λ = 1 it is the plain recipe.
λ = 1 keeps every step's return R_i and changes only its baseline (unbiased; less variance where Φ is a good value,
and groups whose samples all agree get a signal: R − Φ(s_k)); λ < 1 credits each step with the change of value it
made (dense credit, biased where Φ is wrong).

Tokens of step k carry step k's advantage; the EOS after the last step carries the last step's. The scorer's
reward-model tokens are charged to its own ledger (`ledger.reward_tokens`), never to the policy's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from searchlearn.contracts import ProcessReward, Task
from searchlearn.learn.advantages import step_gae
from searchlearn.learn.rollout import Rollout, step_end_tokens, step_rewards


@dataclass
class PotentialShaping:
    """Φ from a process scorer, for PPO (`token_rewards`) and the GRPO family (`token_advantages`)."""

    scorer: ProcessReward  # per-step scores in [0, 1]: the value of the state each step leads to
    task: Task  # splits completions into steps (the scorer's own split)
    decode: Callable[[list[int]], str]  # the policy tokenizer's decode: where each step ends in tokens
    coef: float = 1.0  # α: weight of the scorer's values (0 = the outcome reward alone)
    lam: float = 1.0  # GRPO family: λ of the step-level GAE (1 = Monte-Carlo returns, the scorer a baseline)

    def __post_init__(self) -> None:
        if not 0.0 <= self.coef <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"shaping coef and lam must be in [0, 1], got {self.coef} and {self.lam}")

    def step_values(self, rollout: Rollout) -> tuple[list[list[str]], list[list[float]]]:
        """Each row's steps and the scorer's score after each (one scorer call for the whole rollout)."""
        G = rollout.group_size
        steps = [[s for s in self.task.steps(c.text) if s] for c in rollout.completions]
        rows = [r for r, s in enumerate(steps) if s]
        scored = self.scorer([rollout.problems[r // G] for r in rows],
                             [rollout.completions[r].text for r in rows]) if rows else []
        values: list[list[float]] = [[] for _ in steps]
        for r, scores in zip(rows, scored):
            if len(scores) != len(steps[r]):
                raise ValueError(f"shaping: the scorer gave {len(scores)} scores for {len(steps[r])} steps; it must "
                                 "split completions as task.steps does")
            values[r] = [float(v) for v in scores]
        return steps, values

    def token_rewards(self, rollout: Rollout) -> torch.Tensor:
        """PPO's dense rewards, (B, T−1) on `rollout.batch`'s action columns: Φ(s_{k+1}) − Φ(s_k) on the token that
        ends step k, Φ(s_0) = Φ(s_T) = 0, Φ = α·score (reward/shaping.py's terms, γ = 1)."""
        steps, values = self.step_values(rollout)
        terms = []
        for row in values:
            phi = [0.0] + [self.coef * v for v in row[:-1]] + [0.0]  # Φ(s_0) … Φ(s_T)
            terms.append([phi[k + 1] - phi[k] for k in range(len(row))])
        return step_rewards(rollout, terms, steps, self.decode)

    def token_advantages(self, rollout: Rollout, advantages: torch.Tensor) -> torch.Tensor:
        """The GRPO family's per-token advantages, (B, T−1): the recipe's outcome `advantages` (N, G) plus each
        step's correction GAE_k − (R − mean_g R); zero off the action columns."""
        mask = rollout.batch.action_mask
        out = advantages.reshape(-1, 1).to(torch.float32) * mask  # (B, T−1) the recipe's, on every action
        rewards = rollout.rewards  # (N, G)
        baseline = rewards.mean(-1)  # (N,) mean_g R, GRPO's V(s_0)
        G = rollout.group_size
        for r, (steps, values) in enumerate(zip(*self.step_values(rollout))):
            if not steps:
                continue
            R, b = float(rewards.view(-1)[r]), float(baseline[r // G])
            V = [b] + [(1 - self.coef) * b + self.coef * v for v in values[:-1]]  # V(s_0) … V(s_{T−1})
            correction = [a - (R - b) for a in step_gae(R, V, self.lam)]
            first = len(rollout.prompt_ids[r]) - 1
            ends = step_end_tokens(rollout.completions[r].token_ids, steps, self.decode)
            start = 0
            for k, (end, c) in enumerate(zip(ends, correction)):
                stop = len(rollout.action_ids[r]) if k == len(ends) - 1 else end + 1  # the last step takes the EOS
                out[r, first + start : first + stop] += c
                start = stop
        return out * mask


def reward_tokens(scorer: ProcessReward) -> int:
    """The scorer's reward-model tokens so far (0 for a scorer without a ledger, e.g. gold labels)."""
    return getattr(getattr(scorer, "ledger", None), "reward_tokens", 0)
