"""The loop's registries: config names → searchers, rewards and learners, each a plain function.

  * a searcher runs the training-time search: `(problems, policy, task, rewards, searcher_cfg, seed) -> results`;
  * a reward builder gives the round's `Rewards`: an outcome reward (labels trajectories, scores RL rollouts) and a
    process scorer (guides tree searches, values their nodes);
  * a learner either consumes the search (`prepare` turns results into training data, `train` fits them) or does its
    own rollouts (`kind == "online"`: GRPO family, PPO; it samples, so the searcher is not used).
`loop_config` checks names against these tables; `loop` calls what they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Sequence

from searchlearn.learn.dpo import node_value, solution_pairs, step_pairs, tokenize_pairs, train_dpo
from searchlearn.learn.expert_iteration import expert_examples
from searchlearn.learn.grpo import recipe, train_grpo
from searchlearn.learn.losses import dpo_loss, ipo_loss
from searchlearn.learn.ppo import train_ppo
from searchlearn.learn.sft import train_sft
from searchlearn.reward.process import ConfidenceScorer, GoldScorer, OutcomeAtTerminal
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.beam import BeamConfig, beam_search
from searchlearn.search.best_of_n import sample
from searchlearn.search.budget import Budget
from searchlearn.search.dvts import dvts
from searchlearn.search.mcts import MCTSConfig, mcts
from searchlearn.search.revision import RevisionConfig, revise
from searchlearn.types import Problem, SamplingParams, SearchResult


# -- rewards -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rewards:
    """What scores a round: `outcome` (problems, completions) -> [float | None]; `process` (problems, prefixes) ->
    per-step scores."""

    outcome: Callable
    process: Callable


def verifier_rewards(task, policy) -> Rewards:
    """The verifier; tree searches are guided by the policy's own step confidence, with the verifier's verdict on a
    step that ends a solution (training problems have verifiers, so training-time search may use them)."""
    verifier = VerifierReward(task)
    return Rewards(verifier, OutcomeAtTerminal(ConfidenceScorer(policy, task), verifier))


def gold_rewards(task, policy) -> Rewards:
    """The verifier; tree searches are guided by Countdown's gold process labels (an oracle PRM)."""
    return Rewards(VerifierReward(task), GoldScorer(task))


def confidence_rewards(task, policy) -> Rewards:
    """The verifier; tree searches are guided by the policy's confidence alone (as at test time, no verifier)."""
    return Rewards(VerifierReward(task), ConfidenceScorer(policy, task))


def selfeval_rewards(task, policy) -> Rewards:
    """The verifier; tree searches are guided by the policy's self-evaluation of each step (reward/selfeval.py)."""
    from searchlearn.reward.selfeval import SelfEvalScorer

    return Rewards(VerifierReward(task), SelfEvalScorer(policy, task))


REWARDS: dict[str, Callable] = {"verifier": verifier_rewards, "gold": gold_rewards, "confidence": confidence_rewards,
                                "selfeval": selfeval_rewards}


# -- searchers ---------------------------------------------------------------------------------------------------
def run_bon(problems, policy, task, rewards: Rewards, searcher, seed: int) -> list[SearchResult]:
    """Best-of-N: n independent samples per problem (one engine call)."""
    params = SamplingParams(n=searcher.n, temperature=searcher.temperature, max_new_tokens=searcher.max_new_tokens,
                            seed=seed)
    return sample(problems, policy, task, params, rewards.outcome)


def _budget(searcher) -> Budget:
    return Budget(searcher.n, searcher.max_tokens)


def run_beam(problems, policy, task, rewards: Rewards, searcher, seed: int) -> list[SearchResult]:
    return beam_search(problems, policy, task, rewards.process, _budget(searcher), searcher.search_config(seed))


def run_dvts(problems, policy, task, rewards: Rewards, searcher, seed: int) -> list[SearchResult]:
    return dvts(problems, policy, task, rewards.process, _budget(searcher), searcher.search_config(seed))


def run_mcts(problems, policy, task, rewards: Rewards, searcher, seed: int) -> list[SearchResult]:
    """MCTS; terminal nodes are valued by the outcome reward (the verifier)."""
    return mcts(problems, policy, task, rewards.process, _budget(searcher), searcher.search_config(seed),
                terminal_reward=rewards.outcome)


def run_revision(problems, policy, task, rewards: Rewards, searcher, seed: int) -> list[SearchResult]:
    return revise(problems, policy, task, _budget(searcher), searcher.search_config(seed), verifier=rewards.outcome,
                  scorer=rewards.process)


@dataclass(frozen=True)
class SearcherSpec:
    run: Callable  # (problems, policy, task, rewards, SearcherConfig, seed) -> list[SearchResult]
    config: type | None  # the searcher's own config dataclass (SearcherConfig.options are its keys); None: no options
    tree: bool  # its results carry search trees (step-level DPO needs them)


SEARCHERS: dict[str, SearcherSpec] = {
    "bon": SearcherSpec(run_bon, None, False),
    "beam": SearcherSpec(run_beam, BeamConfig, True),
    "dvts": SearcherSpec(run_dvts, BeamConfig, True),
    "mcts": SearcherSpec(run_mcts, MCTSConfig, True),
    "revision": SearcherSpec(run_revision, RevisionConfig, False),
}


# -- learners ----------------------------------------------------------------------------------------------------
def label_outcomes(results: Sequence[SearchResult], problems: Sequence[Problem], outcome) -> None:
    """Set every trajectory's `reward` to the outcome reward of its completion, and `correct` (reward ≥ 1).

    Tree searches leave their process scores on the tree's nodes (what step-DPO ranks siblings by)."""
    by_id = {p.id: p for p in problems}
    flat = [(by_id[r.problem_id], t) for r in results for t in r.trajectories]
    scores = outcome([p for p, _ in flat], [t.completion for _, t in flat]) if flat else []
    for (_, t), score in zip(flat, scores):
        t.reward = score
        t.correct = score is not None and score >= 1.0


def expert_data(results: Sequence[SearchResult], problems, policy, phase, seed: int) -> tuple[list, dict]:
    """Expert iteration's data: the verifier-correct trajectories (`learn/expert_iteration.py`)."""
    examples = expert_examples(results, policy.tokenizer, phase.keep_per_problem)
    return examples, {"learn/examples": len(examples)}


def solution_pair_data(results: Sequence[SearchResult], problems, policy, phase, seed: int) -> tuple[list, dict]:
    """Whole-solution DPO pairs: correct × incorrect trajectories of one problem."""
    pairs = solution_pairs(results, phase.max_pairs_per_problem, seed)
    return [list(x) for x in tokenize_pairs(pairs, policy.tokenizer)], {"learn/pairs": len(pairs)}


def step_pair_data(results: Sequence[SearchResult], problems, policy, phase, seed: int) -> tuple[list, dict]:
    """Step-DPO pairs: sibling steps of each search tree, ranked by their value (MCTS Q or the beam's score)."""
    prompts = {p.id: p.prompt for p in problems}
    pairs = [pair for r in results if r.tree is not None
             for pair in step_pairs(r.tree, prompts[r.problem_id], node_value, phase.min_margin,
                                    phase.max_pairs_per_node)]
    return [list(x) for x in tokenize_pairs(pairs, policy.tokenizer)], {"learn/pairs": len(pairs)}


def train_sft_examples(policy, data, phase, seed: int, rewards, ckpt_dir, log, name: str) -> dict:
    cfg = replace(phase.sft, seed=seed)
    return train_sft(policy.model, [tuple(x) for x in data], cfg, policy.tokenizer.pad_id, ckpt_dir,
                     policy.tokenizer, log, name=name)


def train_pairs(policy, data, phase, seed: int, rewards, ckpt_dir, log, name: str, loss_fn=dpo_loss) -> dict:
    cfg = replace(phase.dpo, seed=seed)
    return train_dpo(policy.model, [tuple(x) for x in data], cfg, policy.tokenizer.pad_id, loss_fn, ckpt_dir=ckpt_dir,
                     tokenizer=policy.tokenizer, log=log, name=name)


def train_group_rl(policy, problems, phase, seed: int, rewards, ckpt_dir, log, name: str, variant: str = "grpo"
                   ) -> dict:
    """A GRPO-family run on the round's problem pool (log_every 1: the loop sums each step's generated tokens)."""
    cfg = replace(phase.grpo, seed=seed, log_every=1)
    pair = recipe(variant, cfg)
    return train_grpo(policy, problems, cfg, rewards.outcome, pair.advantage_fn, pair.loss_fn, ckpt_dir=ckpt_dir,
                      log=log, name=name)


def train_ppo_rl(policy, problems, phase, seed: int, rewards, ckpt_dir, log, name: str) -> dict:
    cfg = replace(phase.ppo, seed=seed, log_every=1)
    return train_ppo(policy, problems, cfg, rewards.outcome, ckpt_dir=ckpt_dir, log=log, name=name)


@dataclass(frozen=True)
class LearnerSpec:
    kind: str  # "search": learns from the training-time search's results; "online": samples its own rollouts
    train: Callable  # (policy, data | problems, phase, seed, rewards, ckpt_dir, log, name) -> stats
    prepare: Callable | None = None  # search learners: (results, problems, policy, phase, seed) -> (data, stats)
    needs_tree: bool = False  # prepare reads search trees


def _online(variant: str) -> LearnerSpec:
    return LearnerSpec("online", partial(train_group_rl, variant=variant))


LEARNERS: dict[str, LearnerSpec] = {
    "expert_iteration": LearnerSpec("search", train_sft_examples, expert_data),
    "sft": LearnerSpec("search", train_sft_examples, expert_data),  # the same: SFT on verifier-kept search data
    "dpo": LearnerSpec("search", train_pairs, solution_pair_data),
    "ipo": LearnerSpec("search", partial(train_pairs, loss_fn=ipo_loss), solution_pair_data),
    "step_dpo": LearnerSpec("search", train_pairs, step_pair_data, needs_tree=True),
    **{variant: _online(variant) for variant in ("grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp")},
    "ppo": LearnerSpec("online", train_ppo_rl),
}
