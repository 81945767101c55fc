"""Online RL without a critic: the GRPO family (GRPO, Dr. GRPO, DAPO) and RLOO / REINFORCE++.

Each step: sample G completions of N training problems in one batched engine call, score them with an outcome reward,
turn the (N, G) rewards into advantages with the advantage function the caller hands in, then run μ epochs of
minibatch updates with the loss function the caller hands in (both are plain functions from `advantages.py` and
`losses.py`; `recipe(name, cfg)` pairs them for configs). A frozen reference model is loaded only when β > 0.

The sampling seed, the problems and the minibatch order are pure functions of (cfg.seed, step), and checkpoints carry
the optimizer, the RNG state and the reference weights, so a killed run resumed from its last checkpoint redoes
exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import torch

from searchlearn import progress
from searchlearn.contracts import OutcomeReward, TrainablePolicy
from searchlearn.distributed.ddp import (
    all_sum,
    all_sum_dict,
    gather,
    local_rows,
    my_rows,
    rank_world,
)
from searchlearn.distributed.shard import learner_ranks
from searchlearn.distributed.weights import to_arrays
from searchlearn.learn.advantages import (
    dapo_dynamic_sampling_mask,
    dr_grpo_advantages,
    grpo_advantages,
    overlong_penalty,
    reinforce_pp_advantages,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
    solved_length_cost,
    w_reinforce_advantages,
)
from searchlearn.learn.data import minibatches, problem_indices
from searchlearn.learn.problem_pool import EdgePool
from searchlearn.learn.dense_rewards import PotentialShaping, reward_tokens
from searchlearn.learn.losses import (
    dapo_loss,
    dr_grpo_loss,
    grpo_loss,
    reinforce_pp_loss,
    rloo_loss,
)
from searchlearn.learn.rollout import (
    Rollout,
    RolloutConfig,
    concat_rollouts,
    frozen_logprobs,
    sample_rollout,
    sorted_token_logprobs,
)
from searchlearn.learn.trainer import Trainer
from searchlearn.learn.tree_rollout import TREE_ADVANTAGES, TreeShape, training_tree, tree_advantages
from searchlearn.types import Problem


@dataclass
class GRPOConfig(RolloutConfig):
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal, refill from fresh problems
    max_sampling_rounds: int = 3  # DAPO refill: most rollouts drawn in one step to fill the N groups
    overlong_buffer: int = 0  # DAPO soft overlong penalty width L_cache in tokens (0 = off)
    overlong_factor: float = 1.0  # scale of the overlong penalty
    length_cost: float = 0.0  # a solved sample's reward is 1 − length_cost · tokens / max_new_tokens (failures: 0)
    length_chunks: int = 4  # a minibatch's forward runs on this many groups of rows of similar length (less padding)
    shaping_lam: float = 1.0  # λ of the step-level GAE when `shaping` > 0 (1 = Monte-Carlo returns; dense_rewards.py)
    positive_weight: float = 0.1  # W-REINFORCE's λ: the weight of solved samples against failed ones (w_reinforce)
    target_kl: float = 0.0  # end a rollout's updates once KL(π_old ‖ π_θ) on a minibatch passes this (0 = off)
    log_kl_init: bool = True  # keep a frozen copy of the starting policy and log KL(π_θ ‖ π_start) (`learn/kl_ref`)
    pool_refresh: int = 0  # edge-of-competence pool: draw only problems whose last group was neither all right nor
    #                        all wrong (unseen ones too); such a verdict expires after this many steps (0 = off)
    # tree_grpo (tree_rollout.py): group_size root chains per problem, then tree_levels rounds of branching from
    # tree_points points per root's subtree, tree_children continuations each; advantages from the tree of samples
    tree_levels: int = 1  # L (0: the tree the chains' shared prefixes make)
    tree_points: int = 2  # N branch points per root chain's subtree and level
    tree_children: int = 2  # T continuations per branch point
    branch_at: str = "step"  # step (after a step delimiter) | surprisal (the tokens with the highest −log π)
    tree_advantage: str = "treerl"  # treerl (global + local, over √leaves) | treerpo (GRPO among siblings)
    vine_rollouts: int = 4  # vineppo: Monte-Carlo rollouts per step prefix for V̂(s_k) (reward/montecarlo.py)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.overlong_buffer <= self.max_new_tokens or self.max_sampling_rounds < 1:
            raise ValueError("overlong_buffer in [0, max_new_tokens]; max_sampling_rounds >= 1")
        if self.length_chunks < 1:
            raise ValueError("length_chunks must be >= 1")
        if not 0 <= self.shaping_lam <= 1:
            raise ValueError("shaping_lam must be in [0, 1]")
        if self.length_cost < 0:
            raise ValueError(f"length_cost must be >= 0, got {self.length_cost}")
        if self.target_kl < 0 or self.pool_refresh < 0:
            raise ValueError("target_kl and pool_refresh must be >= 0")
        if self.vine_rollouts < 1:
            raise ValueError("vine_rollouts must be >= 1")
        if self.tree_advantage not in TREE_ADVANTAGES:
            raise ValueError(f"tree_advantage must be one of {', '.join(TREE_ADVANTAGES)}, got {self.tree_advantage!r}")
        self.tree_shape()  # checks the tree's settings

    def tree_shape(self) -> TreeShape:
        """The tree rollouts of tree_grpo: group_size root chains per problem."""
        return TreeShape(self.group_size, self.tree_levels, self.tree_points, self.tree_children, self.branch_at)


@dataclass(frozen=True)
class Recipe:
    """An advantage function and a loss function that belong together; a tree recipe samples trees and takes its
    advantages from them (`tree_fn(parents, rewards)`, advantages.py) instead of from `advantage_fn`."""

    advantage_fn: Callable[[torch.Tensor], torch.Tensor]  # (N, G) rewards -> (N, G) advantages
    loss_fn: Callable  # the losses.py GRPO-family signature
    tree_fn: Callable | None = None  # tree_grpo: (parents, rewards per segment) -> (S,) segment advantages


def recipe(name: str, cfg: GRPOConfig) -> Recipe:
    """Named pairings for configs and the CLI (the trainer itself only ever receives functions).

    DAPO's two sampling-side parts are config switches: `dynamic_sampling` and `overlong_buffer`.
    """
    table = {
        "grpo": lambda: Recipe(grpo_advantages, grpo_loss),
        "dr_grpo": lambda: Recipe(dr_grpo_advantages, partial(dr_grpo_loss, max_tokens=cfg.max_new_tokens + 1)),
        "dapo": lambda: Recipe(grpo_advantages, dapo_loss),
        "rloo": lambda: Recipe(rloo_advantages, rloo_loss),
        "reinforce_pp": lambda: Recipe(reinforce_pp_advantages, reinforce_pp_loss),
        "reinforce_pp_baseline": lambda: Recipe(reinforce_pp_baseline_advantages, reinforce_pp_loss),
        "w_reinforce": lambda: Recipe(partial(w_reinforce_advantages, positive_weight=cfg.positive_weight),
                                      partial(dr_grpo_loss, max_tokens=cfg.max_new_tokens + 1)),
        # a tree's rows train disjoint token sets of unequal size: every token weighs the same (a constant divisor)
        "tree_grpo": lambda: Recipe(grpo_advantages, partial(dr_grpo_loss, max_tokens=cfg.max_new_tokens + 1),
                                    TREE_ADVANTAGES[cfg.tree_advantage]),
    }
    if name not in table:
        raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(table)}")
    return table[name]()


def collect(policy: TrainablePolicy, problems: Sequence[Problem], step: int, cfg: GRPOConfig, reward: OutcomeReward,
            pool: EdgePool | None = None, environment: Callable | None = None, tree: bool = False
            ) -> tuple[Rollout, dict]:
    """Step `step`'s rollout: N problems × G samples, shaped rewards, and (DAPO) only informative groups.

    With dynamic sampling, groups whose rewards are all equal are dropped and further batches of fresh problems are
    sampled (at most cfg.max_sampling_rounds in all) until N groups are kept; surplus groups are cut. With a `pool`
    (problem_pool.py), problems are drawn from its edge of competence, and every group's pass rate goes back into it.
    """
    if (cfg.dynamic_sampling or pool is not None) and rank_world()[1] > 1:
        raise ValueError("DAPO dynamic sampling and the edge pool do not run data-parallel yet: use --workers 1")
    parts, scores, lengths, kept_groups = [], [], [], 0
    for draw in range(cfg.max_sampling_rounds if cfg.dynamic_sampling else 1):
        params = cfg.sampling(step, draw)
        if pool is not None:
            index = pool.draw(step, draw, cfg.prompts_per_step, cfg.seed)
        else:
            index = problem_indices(len(problems), step, cfg.prompts_per_step, cfg.seed if draw == 0 else params.seed)
        index = index[my_rows(len(index))]  # data parallel: this rank's problems (all of them in one process)
        part = sample_rollout(policy, [problems[i] for i in index], reward, params, environment,
                              cfg.tree_shape() if tree else None)
        if pool is not None:
            pool.observe(index, (part.scores >= 1).float().mean(-1).tolist(), step)
        scores.append(part.scores.flatten())
        lengths.append(part.lengths().flatten())
        if cfg.overlong_buffer:
            penalty = overlong_penalty(lengths[-1], cfg.max_new_tokens, cfg.overlong_buffer, cfg.overlong_factor)
            part.rewards = part.rewards + penalty.view_as(part.rewards)  # (N, G)
        if cfg.length_cost:
            part.rewards = part.rewards - solved_length_cost(part.scores, part.lengths(), cfg.max_new_tokens,
                                                             cfg.length_cost)  # (N, G)
        if cfg.dynamic_sampling:
            part = part.select_groups(dapo_dynamic_sampling_mask(part.rewards))
            kept_groups += len(part.problems)
        parts.append(part)
        if kept_groups >= cfg.prompts_per_step:
            break
    rollout = concat_rollouts(parts)
    if len(rollout.problems) > cfg.prompts_per_step:
        rollout = rollout.select_groups(torch.arange(len(rollout.problems)) < cfg.prompts_per_step)
    scores_, lengths_, rewards_ = gather(torch.cat(scores)), gather(torch.cat(lengths)), gather(rollout.rewards)
    # the share of trained groups with a gradient: rewards not all equal (problems at the edge of competence)
    informative = dapo_dynamic_sampling_mask(rewards_).float().mean().item() if len(rewards_) else float("nan")
    stats = {"learn/reward": rewards_.mean().item() if len(rewards_) else float("nan"),
             "learn/solved": (scores_ >= 1).float().mean().item(), "learn/score": scores_.mean().item(),
             "learn/completion_tokens": lengths_.mean().item(), "learn/groups": len(rewards_),
             "learn/groups_drawn": len(scores_) // rollout.group_size, "learn/unscored": all_sum(rollout.unscored),
             "learn/informative_groups": informative,
             "ledger/generated_tokens": all_sum(rollout.ledger.generated_tokens),
             "ledger/prefilled_tokens": all_sum(rollout.ledger.prefilled_tokens),
             "count/samples": len(scores_), "count/generated_tokens": all_sum(rollout.ledger.generated_tokens)}
    task = getattr(reward, "task", None)
    if hasattr(task, "step_marks"):
        stats["learn/accepted_with_error"] = accepted_with_error(rollout, task)
    return rollout, stats


def accepted_with_error(rollout: Rollout, task, limit: int = 64) -> float:
    """The share of verifier-accepted samples (the first `limit` of them) with a step the task marks as an arithmetic
    error: the reward paying for wrong reasoning (a task that can check its steps: `step_marks`). NaN when none."""
    solved = (rollout.scores.flatten() >= 1).tolist()  # (N·G,) prompt-major, as the completions
    accepted = [(rollout.problems[r // rollout.group_size], c) for r, c in enumerate(rollout.completions)
                if solved[r]][:limit]
    if not accepted:
        return float("nan")
    wrong = sum(any(mark == "arithmetic error" for _, mark in task.step_marks(p, c.text)) for p, c in accepted)
    return wrong / len(accepted)


def update(trainer: Trainer, rollout: Rollout, advantages: torch.Tensor, cfg: GRPOConfig, loss_fn: Callable,
           step: int, reference: torch.nn.Module | None = None) -> dict:
    """μ epochs of minibatch updates on one rollout; returns the mean of each loss statistic and the grad norm.

    advantages: (B,) per sequence or (B, T−1) per token, rows as in `rollout.batch`. π_old is the policy before this
    update: when there is one minibatch and one epoch, that is the current policy's own detached log-probabilities.

    Data parallel (distributed/ddp.py): the minibatches are drawn over every rank's rows; a rank trains on its part of
    each and scales its loss by its share of the loss's units (`mean_over`: sequences or tokens), so the summed
    gradient is the global minibatch's.
    """
    model, batch = trainer.model, rollout.batch
    B = len(batch)
    counts = gather(torch.tensor([B]))  # rows per rank
    start, total, parallel = int(counts[: rank_world()[0]].sum()), int(counts.sum()), len(counts) > 1
    unit = getattr(getattr(loss_fn, "func", loss_fn), "mean_over", "sequences")
    plan = [minibatches(total, cfg.minibatch_size, cfg.seed, step, e) for e in range(cfg.epochs)]
    on_policy = len(plan) == 1 and len(plan[0]) == 1
    was_training = model.training
    model.train()
    logp_old = None if on_policy else frozen_logprobs(model, batch)  # (B, T−1)
    logp_ref = frozen_logprobs(reference, batch) if reference is not None else None  # β > 0: the KL term; else logged
    sums: dict[str, float] = {}
    n_updates, trained_tokens, stopped = 0, 0.0, False
    for epoch_plan in plan:
        if stopped:
            break
        for index in epoch_plan:
            index = local_rows(index, start, start + B)  # this rank's rows of the minibatch (all, in one process)
            share, token_share, stats = 1.0, 1.0, {}
            if len(index):
                sub = batch.rows(index)
                width = sub.action_mask.shape[1]
                logp = sorted_token_logprobs(model, sub, cfg.length_chunks)  # (b, w)
                old = logp.detach() if logp_old is None else logp_old[index, :width]
                ref = None if logp_ref is None else logp_ref[index, :width]
                adv = advantages[index] if advantages.dim() == 1 else advantages[index, :width]
                loss, stats = loss_fn(logp, old, adv, sub.action_mask, logp_ref=ref, beta=cfg.beta)
            else:  # none of this minibatch is here: a zero gradient, so that every rank steps together
                loss = sum(p.sum() for p in model.parameters()) * 0.0
            tokens = float(batch.action_mask[index].sum()) if len(index) else 0.0
            if parallel:
                token_share = tokens / max(all_sum(tokens), 1.0)
                share = token_share if unit == "tokens" else len(index) / max(all_sum(len(index)), 1.0)
                loss = loss * share
            if cfg.target_kl and all_sum(stats.get("approx_kl_old", 0.0) * token_share) > cfg.target_kl:
                stopped = True  # π_θ has moved past the target from the rollout's policy: no more updates on it
                sums["kl_stop"] = 1.0
                break
            trained_tokens += all_sum(tokens)
            grad_norm = trainer.update(loss)
            n_updates += 1
            for k, v in stats.items():  # weighted by this rank's share (the loss by its units, the token means by
                w = share if k == "loss" else 1.0 if k == "tokens" else token_share  # tokens): summed, the global one
                sums[k] = sums.get(k, 0.0) + float(v) * w
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + grad_norm / (len(counts) if parallel else 1)
    model.train(was_training)
    sums = all_sum_dict(sums)
    stop = sums.pop("kl_stop", 0.0)
    return {k: v / max(1, n_updates) for k, v in sums.items()} | {"updates": n_updates, "kl_stop": float(stop > 0),
                                                                  "trained_tokens": trained_tokens}


def train_grpo(
    policy: TrainablePolicy,
    problems: Sequence[Problem],
    cfg: GRPOConfig,
    reward: OutcomeReward,
    advantage_fn: Callable[[torch.Tensor], torch.Tensor] = grpo_advantages,
    loss_fn: Callable = grpo_loss,
    reference: torch.nn.Module | None = None,
    ckpt_dir: str | Path | None = None,
    log: Callable[[dict], None] = lambda record: None,
    stop_after: int | None = None,
    name: str = "grpo",
    shaping: PotentialShaping | None = None,
    environment: Callable | None = None,
    tree_fn: Callable | None = None,
) -> dict:
    """Train `policy.model` in place for cfg.steps RL steps on `problems`; resume from `ckpt_dir` if one is there.

    policy: its sampler must generate from the model being trained. reward: outcome contract, e.g.
    `VerifierReward(task)`. shaping: dense per-step credit from a process scorer's values (`dense_rewards.py`;
    None = the outcome reward alone). environment: a factory of multi-turn environments (contracts.Environment; e.g.
    a task with tools): rollouts are episodes and their observation tokens are masked out of the loss. tree_fn: a
    tree advantage (`treerl_advantages`, `treerpo_advantages`): rollouts are trees (cfg.tree_shape(),
    tree_rollout.py), each token takes its segment's advantage and each segment is trained once. reference: the
    frozen π_ref for β > 0 (default: a copy of the policy at step 0, saved in the checkpoint). `stop_after` ends the call after that many steps (a stand-in for a kill, used by tests).
    With a worker pool of N > 1 active (`--workers N`), the run is data-parallel on N ranks, each sampling and
    training on its share of every step's problems (`train_grpo_parallel`).
    Returns {"steps", "seconds", "last": the last logged record}.
    """
    if (world := learner_ranks()) > 1:
        return train_grpo_parallel(world, policy, problems, cfg, reward, advantage_fn, loss_fn, reference,
                                   ckpt_dir, log, stop_after, name, shaping, environment, tree_fn)
    if not problems:
        raise ValueError(f"{name}: no training problems")
    if tree_fn is not None and shaping is not None:
        raise ValueError(f"{name}: tree rollouts take their credit from the tree, not from shaping")
    model = policy.model
    trainer = Trainer(model, cfg, name, ckpt_dir, policy.tokenizer, log, stop_after)
    meta = trainer.resume() or {}
    if cfg.beta > 0 or cfg.log_kl_init or reference is not None:
        reference = trainer.freeze_reference(reference)
    pool = EdgePool(len(problems), cfg.pool_refresh) if cfg.pool_refresh else None
    if pool is not None:
        pool.load(meta.get("pool", {}))

    drawn: dict = {}  # tree_grpo: a training tree of the last step run (returned as "tree")

    def step_fn(step: int) -> dict:
        t_rollout = time.time()
        rollout, record = collect(policy, problems, step, cfg, reward, pool, environment, tree_fn is not None)
        if pool is not None:
            trainer.meta["pool"] = pool.state()  # checkpointed with the step: a resumed run draws the same problems
            record["learn/pool_edge"] = len(pool.eligible(step + 1)) / len(problems)
        t_update = time.time()
        rewards = gather(rollout.rewards)  # (N, G) every rank's groups, in problem order
        first = int(gather(torch.tensor([len(rollout.problems)]))[: rank_world()[0]].sum())  # this rank's first
        advantages_all = advantage_fn(rewards) if len(rewards) else torch.zeros(0, rollout.group_size)  # (N, G)
        advantages = advantages_all[first : first + len(rollout.problems)]  # (n, G) this rank's groups
        if tree_fn is not None:  # per-token advantages (B, T−1) from each problem's tree; segments trained once
            advantages = tree_advantages(rollout, tree_fn)
            if len(rollout.problems):  # the last step's first tree, for the report
                drawn.update(step=step, prompt=rollout.problems[0].prompt,
                             tree=asdict(training_tree(rollout, 0, tree_fn, policy.tokenizer.decode)))
        elif shaping is not None:  # dense: per-token advantages (B, T−1) from step values; every rank sums the counts
            spent, before = reward_tokens(shaping.scorer), policy.ledger.copy()
            advantages = shaping.token_advantages(rollout, advantages) if len(rollout.problems) else advantages.flatten()
            record["ledger/reward_tokens"] = all_sum(reward_tokens(shaping.scorer) - spent)
            values = policy.ledger.since(before)  # a scorer's own rollouts (MC values), generated and prefilled
            rolled = record["ledger/value_rollout_tokens"] = all_sum(values.generated_tokens)
            record["ledger/prefilled_tokens"] += all_sum(values.prefilled_tokens)
            record["count/generated_tokens"] += rolled
            record["ledger/generated_tokens"] += rolled
        else:
            advantages = advantages.flatten()  # (B,)
        if all_sum(float(advantages.abs().sum())) > 0 or (cfg.beta > 0 and len(rewards)):
            stats = update(trainer, rollout, advantages, cfg, loss_fn, step, reference)
        else:  # no group carries a learning signal: skip, rather than let Adam step on stale momentum
            stats = {"updates": 0}
        model.eval()
        record["count/train_tokens"] = stats.pop("trained_tokens", 0.0)
        return {**record, **{f"learn/{k}": v for k, v in stats.items()}, "time/rollout_s": t_update - t_rollout,
                "time/update_s": time.time() - t_update}

    out = trainer.run(step_fn)
    return {**out, "tree": drawn} if drawn else out


def train_grpo_parallel(world: int, policy: TrainablePolicy, problems: Sequence[Problem], cfg: GRPOConfig,
                        reward: OutcomeReward, advantage_fn: Callable = grpo_advantages, loss_fn: Callable = grpo_loss,
                        reference: torch.nn.Module | None = None, ckpt_dir: str | Path | None = None,
                        log: Callable[[dict], None] = lambda record: None, stop_after: int | None = None,
                        name: str = "grpo", shaping: PotentialShaping | None = None,
                        environment: Callable | None = None, tree_fn: Callable | None = None) -> dict:
    """`train_grpo` on `world` data-parallel ranks placed by Ray (distributed/launch.py). Each rank holds a replica
    that samples its share of each step's problems (colocated rollouts: the ranks' weights stay identical, so nothing
    is synced) and trains on its rows of every minibatch, gradients summed; advantages come from every rank's rewards.
    Rank 0 checkpoints to `ckpt_dir` and sends back its weights (loaded into `policy.model`) and its records."""
    from searchlearn.distributed.launch import (  # Ray is imported only when it is used
        adopt,
        data_parallel,
    )

    options = policy.engine_options()
    progress.say(f"{name}: {cfg.steps} steps data-parallel on {world} ranks")
    return adopt(policy.model, data_parallel(_grpo_rank, world, policy.model, policy.tokenizer, options,
                                             list(problems), cfg, reward, advantage_fn, loss_fn, reference, ckpt_dir,
                                             stop_after, name, shaping, environment, tree_fn), log)


def _grpo_rank(model, tokenizer, options, problems, cfg, reward, advantage_fn, loss_fn, reference, ckpt_dir,
               stop_after, name, shaping, environment, tree_fn):
    """One rank of `train_grpo_parallel`: (result, its records, rank 0's weights as arrays)."""
    from searchlearn.policy.policy import LocalPolicy

    records: list[dict] = []
    policy = LocalPolicy(model, tokenizer, **options)
    if shaping is not None and hasattr(shaping.scorer, "with_policy"):  # a scorer that samples uses this replica
        shaping = replace(shaping, scorer=shaping.scorer.with_policy(policy))
    out = train_grpo(policy, problems, cfg, reward, advantage_fn, loss_fn, reference, ckpt_dir, records.append,
                     stop_after, name, shaping, environment, tree_fn)
    return out, records, to_arrays(model) if rank_world()[0] == 0 else None
