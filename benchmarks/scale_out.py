"""Rollout throughput and GRPO round time, in-process (one thread) against 2 Ray workers (one thread each).

Both run in this process, one after the other, on the same model, problems and seeds (the samples are identical:
policy/streams.py), so the ratio compares like with like. A round is `--steps` GRPO steps of the demo's settings
(16 problems × 8 samples, 2 epochs × 4 minibatches): in-process its time splits into rollouts and learning; with 2
workers it runs data-parallel on 2 ranks (each samples and trains on half of every step, `train_grpo_parallel`),
rank 0's rollout time reported, the rest (learning, the all-reduces, starting the ranks) as learning. The rollout
measurement alone shows the sharded rollout workers and weight sync. Last, SFT train tokens/s of the demo's
initialization (eager): one process on 1 and on 2 threads, and 2 data-parallel ranks of 1 thread.

    python benchmarks/scale_out.py                               # the demo's policy if runs/demo/policy exists
    python benchmarks/scale_out.py --model runs/demo/policy --problems 64 --steps 3
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from searchlearn.distributed.pool import WorkerPool
from searchlearn.distributed.shard import use_pool
from searchlearn.learn.grpo import GRPOConfig, recipe, train_grpo
from searchlearn.learn.rollout import sample_rollout
from searchlearn.learn.sft import train_sft, train_sft_parallel
from searchlearn.loop.initialize import InitConfig, build_model, init_examples, task_tokenizer
from searchlearn.policy.hf import load_policy
from searchlearn.policy.policy import LocalPolicy
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.tasks.registry import DEFAULT_TASK
from searchlearn.types import SamplingParams


def make_policy(model: str | None, task):
    if model and Path(model).exists():
        return load_policy(model, backend="native")
    size = InitConfig().model  # the demo's shape, random weights: every completion runs to the cap
    tokenizer = task_tokenizer(task, size)
    return LocalPolicy(build_model(size, tokenizer, seed=0), tokenizer)


def rollout_tokens_per_s(policy, problems, reward, params) -> tuple[float, float]:
    t0 = time.perf_counter()
    rollout = sample_rollout(policy, problems, reward, params)
    seconds = time.perf_counter() - t0
    return rollout.ledger.generated_tokens / seconds, seconds


def grpo_round(policy, problems, reward, steps: int, pool=None) -> dict:
    """One GRPO round's wall time and its split (data-parallel on the pool's workers when a pool is active)."""
    cfg = GRPOConfig(steps=steps, prompts_per_step=16, group_size=8, max_new_tokens=288, epochs=2,
                     minibatch_size=32, lr=2e-5, log_every=1, seed=1)
    pair = recipe("grpo", cfg)
    records: list[dict] = []
    sync0 = pool.sync_seconds if pool else 0.0
    t0 = time.perf_counter()
    train_grpo(policy, problems, cfg, reward, pair.advantage_fn, pair.loss_fn, log=records.append)
    total = time.perf_counter() - t0
    sync = (pool.sync_seconds if pool else 0.0) - sync0
    rollout = sum(r["time/rollout_s"] for r in records) - sync
    return {"round_s": total, "rollout_s": rollout, "sync_s": sync, "learn_s": total - rollout - sync}


def sft_tokens_per_s(world: int, steps: int) -> float:
    """Train tokens/s of the demo's initialization SFT (eager), in-process (world 1) or on `world` ranks."""
    task = DEFAULT_TASK.build()
    init = InitConfig()
    tokenizer = task_tokenizer(task, init.model)
    examples = init_examples(task, tokenizer, 2000, 0, init.model.max_position_embeddings)
    cfg = replace(init.sft, steps=steps, compile=False, checkpoint_every=0, log_every=1)
    records: list[dict] = []
    model = build_model(init.model, tokenizer, seed=0)
    t0 = time.perf_counter()
    if world == 1:
        train_sft(model, examples, cfg, tokenizer.pad_id, log=records.append)
    else:
        train_sft_parallel(world, model, examples, cfg, tokenizer.pad_id, log=records.append)
    seconds = time.perf_counter() - t0
    return sum(r["learn/tokens"] for r in records) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="runs/demo/policy", help="checkpoint (default: the demo's, else random)")
    ap.add_argument("--problems", type=int, default=64, help="problems of the rollout measurement")
    ap.add_argument("--samples", type=int, default=8, help="samples per problem")
    ap.add_argument("--steps", type=int, default=3, help="GRPO steps of the round measurement")
    ap.add_argument("--sft-steps", type=int, default=40, help="SFT steps of the data-parallel measurement")
    ap.add_argument("--out", default="runs/bench/scale_out.json")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the in-process baseline and the learner: one thread, as each worker
    task = DEFAULT_TASK.build()
    reward = VerifierReward(task)
    problems = task.problems("train", max(args.problems, 64), seed=3)
    params = SamplingParams(n=args.samples, max_new_tokens=288, seed=0)
    results = {}
    policy = make_policy(args.model, task)
    rollout_tokens_per_s(policy, problems[: args.problems], reward, replace(params, seed=99))  # warm-up
    results["local_tokens_per_s"], _ = rollout_tokens_per_s(policy, problems[: args.problems], reward, params)
    results["sft_local_1thread_tokens_per_s"] = sft_tokens_per_s(1, args.sft_steps)
    torch.set_num_threads(2)
    results["sft_local_2threads_tokens_per_s"] = sft_tokens_per_s(1, args.sft_steps)
    torch.set_num_threads(1)
    results["local_round"] = grpo_round(make_policy(args.model, task), problems, reward, args.steps)
    with WorkerPool(2, threads=1) as pool, use_pool(pool):
        policy = make_policy(args.model, task)
        pool.sync(policy)  # workers start and load before the clock runs
        rollout_tokens_per_s(policy, problems[: args.problems], reward, replace(params, seed=99))  # warm-up
        results["ray2_tokens_per_s"], _ = rollout_tokens_per_s(policy, problems[: args.problems], reward, params)
        results["ray2_round"] = grpo_round(policy, problems, reward, args.steps, pool)
        results["sft_ray2_tokens_per_s"] = sft_tokens_per_s(2, args.sft_steps)
    results["rollout_speedup"] = results["ray2_tokens_per_s"] / results["local_tokens_per_s"]
    results["round_speedup"] = results["local_round"]["round_s"] / results["ray2_round"]["round_s"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
