"""The loop's learners by name, and what scores a round.

A learner either consumes the round's training-time search (`kind == "search"`: `prepare` turns the search results
into training data, `train` fits them: expert iteration, DPO, step-DPO) or samples its own rollouts of the round's
problems (`kind == "online"`: the GRPO family, PPO; the searcher is not used). Each reads its own section of the
phase config (`section`: sft, dpo, grpo or ppo). A new learner is a file with its trainer plus one line in
`LEARNERS`; `loop.config` checks names against it, `loop.rounds` calls what it holds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

from searchlearn.config import ConfigError
from searchlearn.contracts import OutcomeReward, Task
from searchlearn.distributed.shard import WithPolicy
from searchlearn.learn.dpo import (
    node_value,
    solution_pairs,
    step_pairs,
    tokenize_pairs,
    train_dpo,
)
from searchlearn.learn.expert_iteration import expert_examples
from searchlearn.learn.dense_rewards import PotentialShaping, reward_tokens
from searchlearn.learn.grpo import recipe, train_grpo
from searchlearn.learn.losses import dpo_loss, ipo_loss
from searchlearn.learn.ppo import train_ppo
from searchlearn.learn.sft import trace_example, train_sft
from searchlearn.registry import Registry
from searchlearn.reward.montecarlo import MonteCarloScorer
from searchlearn.reward.scorers import make_scorer
from searchlearn.reward.verifiers import OUTCOMES
from searchlearn.types import Problem, SearchResult


# -- what scores a round -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rewards:
    """`outcome` labels trajectories and scores RL rollouts (the task's verifier); `process` guides tree searches
    and values their nodes (the phase's `reward`: a scorer name of reward/scorers.py), built where the search runs,
    from that process's policy (`distributed.shard.WithPolicy`); online learners with `shaping` > 0 take their
    potential from it."""

    outcome: OutcomeReward
    process: WithPolicy  # builds a ProcessReward from a policy
    task: Task

    def environment(self):
        """The task's multi-turn environment factory (a task with tools), or None: online learners roll out in it."""
        return self.task.environment() if hasattr(self.task, "environment") else None

    def shaping(self, policy, cfg) -> PotentialShaping | None:
        """The online learner's dense rewards: Φ from the process scorer, weighted by cfg.shaping (None at 0)."""
        if not cfg.shaping:
            return None
        return PotentialShaping(self.process.build(policy), self.task, policy.tokenizer.decode, cfg.shaping,
                                getattr(cfg, "shaping_lam", 1.0))


def round_rewards(scorer: str, task, outcome: str = "verifier") -> Rewards:
    return Rewards(OUTCOMES[outcome](task), WithPolicy(make_scorer, (scorer, task)), task)


def label_outcomes(results: Sequence[SearchResult], problems: Sequence[Problem], outcome: OutcomeReward) -> None:
    """Set every trajectory's `reward` to the outcome reward of its completion, and `correct` (reward ≥ 1).

    Tree searches leave their process scores on the tree's nodes (what step-DPO ranks siblings by)."""
    by_id = {p.id: p for p in problems}
    flat = [(by_id[r.problem_id], t) for r in results for t in r.trajectories]
    scores = outcome([p for p, _ in flat], [t.completion for _, t in flat]) if flat else []
    for (_, t), score in zip(flat, scores):
        t.reward = score
        t.correct = score is not None and score >= 1.0


# -- search learners: data from the search, then a trainer ----------------------------------------------------------
def expert_data(results: Sequence[SearchResult], problems, task, policy, phase, seed: int) -> tuple[list, dict]:
    """Expert iteration's data: the shortest verifier-correct trajectories (`learn/expert_iteration.py`), plus
    `phase.solver_traces` × as many fresh solver traces of the round's (training) problems, which keep the behaviours
    of the initialization from narrowing away round after round."""
    examples = expert_examples(results, policy.tokenizer, phase.keep_per_problem)
    n_solver = round(phase.solver_traces * len(examples))
    if n_solver and not hasattr(task, "trace_segments"):
        raise ConfigError(f"solver_traces: the task {task.name!r} writes no solver traces; set solver_traces: 0")
    if n_solver:
        rng = random.Random(seed)
        picks = [problems[i] for i in rng.sample(range(len(problems)), min(n_solver, len(problems)))]
        examples += [list(trace_example(policy.tokenizer, p.prompt, task.trace_segments(p, rng))) for p in picks]
    return examples, {"learn/examples": len(examples), "learn/solver_traces": n_solver and len(picks)}


def solution_pair_data(results: Sequence[SearchResult], problems, task, policy, phase, seed: int) -> tuple[list, dict]:
    """Whole-solution DPO pairs: correct × incorrect trajectories of one problem."""
    pairs = solution_pairs(results, phase.max_pairs_per_problem, seed)
    return [list(x) for x in tokenize_pairs(pairs, policy.tokenizer)], {"learn/pairs": len(pairs)}


def step_pair_data(results: Sequence[SearchResult], problems, task, policy, phase, seed: int) -> tuple[list, dict]:
    """Step-DPO pairs: sibling steps of each search tree, ranked by their value (MCTS Q or the beam's score)."""
    prompts = {p.id: p.prompt for p in problems}
    pairs = [pair for r in results if r.tree is not None
             for pair in step_pairs(r.tree, prompts[r.problem_id], node_value, phase.min_margin,
                                    phase.max_pairs_per_node)]
    return [list(x) for x in tokenize_pairs(pairs, policy.tokenizer)], {"learn/pairs": len(pairs)}


def train_sft_examples(policy, data, cfg, rewards, ckpt_dir, log, name: str) -> dict:
    return train_sft(policy.model, [tuple(x) for x in data], cfg, policy.tokenizer.pad_id, ckpt_dir,
                     policy.tokenizer, log, name=name)


def train_pairs(policy, data, cfg, rewards, ckpt_dir, log, name: str, loss_fn=dpo_loss) -> dict:
    return train_dpo(policy.model, [tuple(x) for x in data], cfg, policy.tokenizer.pad_id, loss_fn, ckpt_dir=ckpt_dir,
                     tokenizer=policy.tokenizer, log=log, name=name)


# -- online learners: their own rollouts -----------------------------------------------------------------------------
def train_group_rl(policy, problems, cfg, rewards, ckpt_dir, log, name: str, variant: str = "grpo") -> dict:
    """A GRPO-family run on the round's problem pool."""
    pair = recipe(variant, cfg)
    return train_grpo(policy, problems, cfg, rewards.outcome, pair.advantage_fn, pair.loss_fn, ckpt_dir=ckpt_dir,
                      log=log, name=name, shaping=rewards.shaping(policy, cfg), environment=rewards.environment(),
                      tree_fn=pair.tree_fn)


def train_vineppo(policy, problems, cfg, rewards, ckpt_dir, log, name: str) -> dict:
    """VinePPO (Kazemnejad et al. 2024, arXiv 2410.01679): no critic; each step's tokens take the change of
    Monte-Carlo value the step made, Â_k = V̂(s_{k+1}) − V̂(s_k) (+ R on the last step), V̂ from `vine_rollouts`
    rollouts after every step (reward/montecarlo.py) and the group's mean outcome for the prompt. That is Dr. GRPO with
    the MC values as potential, α = 1, λ = 0 (learn/dense_rewards.py); the rollouts are counted as generated tokens."""
    scorer = MonteCarloScorer(policy, rewards.task, cfg.vine_rollouts, cfg.max_new_tokens, cfg.temperature,
                              within_budget=True)  # V̂(s_k) under the chains' own horizon
    shaping = PotentialShaping(scorer, rewards.task, policy.tokenizer.decode, coef=1.0, lam=0.0)
    pair = recipe("dr_grpo", cfg)
    return train_grpo(policy, problems, cfg, rewards.outcome, pair.advantage_fn, pair.loss_fn, ckpt_dir=ckpt_dir,
                      log=log, name=name, shaping=shaping, environment=rewards.environment())


def train_ppo_rl(policy, problems, cfg, rewards, ckpt_dir, log, name: str) -> dict:
    shaping = rewards.shaping(policy, cfg)
    out = train_ppo(policy, problems, cfg, rewards.outcome, dense_reward=shaping and shaping.token_rewards,
                    ckpt_dir=ckpt_dir, log=log, name=name, environment=rewards.environment())
    return out | ({"reward_tokens": reward_tokens(shaping.scorer)} if shaping else {})


@dataclass(frozen=True)
class LearnerSpec:
    kind: str  # "search": learns from the training-time search's results; "online": samples its own rollouts
    section: str  # the phase config section holding its settings: sft | dpo | grpo | ppo
    train: Callable  # (policy, data | problems, cfg, rewards, ckpt_dir, log, name) -> stats
    prepare: Callable | None = None  # search learners: (results, problems, task, policy, phase, seed) -> (data, stats)
    needs_tree: bool = False  # prepare reads search trees

    def config(self, phase, seed: int):
        """This learner's config from the phase, seeded by the round (online learners log every step: the loop sums
        each step's generated tokens)."""
        cfg = replace(getattr(phase, self.section), seed=seed)
        return replace(cfg, log_every=1) if self.kind == "online" else cfg


def _online(variant: str) -> LearnerSpec:
    return LearnerSpec("online", "grpo", partial(train_group_rl, variant=variant))


LEARNERS: Registry[LearnerSpec] = Registry("learner", {
    "expert_iteration": LearnerSpec("search", "sft", train_sft_examples, expert_data),
    "sft": LearnerSpec("search", "sft", train_sft_examples, expert_data),  # SFT on verifier-kept search data
    "dpo": LearnerSpec("search", "dpo", train_pairs, solution_pair_data),
    "ipo": LearnerSpec("search", "dpo", partial(train_pairs, loss_fn=ipo_loss), solution_pair_data),
    "step_dpo": LearnerSpec("search", "dpo", train_pairs, step_pair_data, needs_tree=True),
    **{variant: _online(variant) for variant in ("grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp", "w_reinforce",
                                                         "tree_grpo")},
    "vineppo": LearnerSpec("online", "grpo", train_vineppo),
    "ppo": LearnerSpec("online", "ppo", train_ppo_rl),
})
