"""What shared prefixes save: a tree rollout's tokens (prefilled + generated, the engine's own counts) against the
same leaves sampled as independent chains.

A tree rollout (learn/tree_rollout.py) samples M root chains per problem, then continuations from branch points on
them: each continuation's prompt is the problem's prompt plus its prefix. With the engine's prefix cache the prefix's
K/V come from the chain that wrote it (a multi-turn episode's rows are kept: its calls have stop strings), so only
the continuation is generated; without it the prefix is prefilled again. The same G leaves as independent chains
would generate every leaf from its first token: Σ_leaves (tokens + the eos sampled) generated, and each problem's
prompt prefilled once (the engine prefills equal prompts once). For reference the script also samples G independent
chains per problem with the same policy and counts what the engine spent on them.

    python benchmarks/tree_tokens.py runs/init1k_0/policy --problems 64 --set task.checks=tool \
        --set task.corrections=0.5 --set task.verdict=tool

Prints one JSON object per engine setting (prefix cache on / off).
"""

from __future__ import annotations

import argparse
import json
import time

from searchlearn.learn.rollout import sample_completions
from searchlearn.learn.tree_rollout import TreeShape, sample_trees
from searchlearn.loop.config import LoopConfig, load_loop_config
from searchlearn.loop.rounds import load_local
from searchlearn.policy.prefix_cache import PrefixCache
from searchlearn.types import SamplingParams


def spent(policy, fn, *args) -> tuple[list, dict]:
    """fn(*args) and what the policy's ledger charged for it."""
    before, start = policy.ledger.copy(), time.perf_counter()
    out = fn(*args)
    d = policy.ledger.since(before)
    return out, {"generated": d.generated_tokens, "prefilled": d.prefilled_tokens,
                 "total": d.generated_tokens + d.prefilled_tokens, "seconds": round(time.perf_counter() - start, 1)}


def measure(path: str, cfg: LoopConfig, problems: int, shape: TreeShape, prefix_cache: bool, seed: int) -> dict:
    task = cfg.build_task()
    environment = task.environment() if hasattr(task, "environment") else None
    policy = load_local(path)
    if not prefix_cache:
        policy.engine.prefix_cache = None
    batch = task.problems("train", problems, seed=seed)
    grpo = cfg.phases[0].grpo
    params = SamplingParams(n=shape.roots, temperature=grpo.temperature, top_p=grpo.top_p,
                            max_new_tokens=grpo.max_new_tokens, seed=seed)
    trees, tree_cost = spent(policy, sample_trees, batch, policy, params, shape, environment)
    leaves = [c for group in trees for c in group]
    prompts = policy.encode_prompts([p.prompt for p in batch])
    as_chains = {"generated": sum(len(c.token_ids) + (c.finish_reason == "eos") for c in leaves),
                 "prefilled": sum(len(p) for p in prompts)}
    as_chains["total"] = as_chains["generated"] + as_chains["prefilled"]
    if policy.engine.prefix_cache is not None:  # the chains start from an empty cache, as the tree did
        policy.engine.prefix_cache = PrefixCache(policy.engine.prefix_cache.max_tokens)
    _, chain_cost = spent(policy, sample_completions, batch, policy,
                          SamplingParams(n=shape.leaves, temperature=params.temperature, top_p=params.top_p,
                                         max_new_tokens=params.max_new_tokens, seed=seed + 1), environment)
    return {"model": path, "prefix_cache": prefix_cache, "problems": problems, "leaves_per_problem": shape.leaves,
            "tree": tree_cost, "same_leaves_as_chains": as_chains, "sampled_chains": chain_cost,
            "saving_vs_same_leaves": round(1 - tree_cost["total"] / as_chains["total"], 3),
            "saving_vs_sampled_chains": round(1 - tree_cost["total"] / chain_cost["total"], 3),
            "mean_leaf_tokens": round(as_chains["generated"] / len(leaves), 1),
            "longest_leaf": max(len(c.token_ids) for c in leaves)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a checkpoint directory")
    p.add_argument("--config", default="configs/loop_tree_grpo.yaml", help="the loop config whose task and tree shape "
                   "are used")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--problems", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    cfg = load_loop_config(args.config, args.set)
    shape = cfg.phases[0].grpo.tree_shape()
    for cache in (True, False):
        print(json.dumps(measure(args.model, cfg, args.problems, shape, cache, args.seed)), flush=True)


if __name__ == "__main__":
    main()
