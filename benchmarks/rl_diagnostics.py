"""One GRPO-family run from a checkpoint, with greedy pass@1 on fresh training-split and held-out problems every K
steps beside the learner's own statistics (reward, completion length, entropy, KL to the start): is what RL learns on
its training targets reaching greedy decoding, and does it reach the held-out targets?

    python benchmarks/rl_diagnostics.py --model runs/demo/ckpt/init --out runs/diag.jsonl --steps 20 --every 10 \\
        --set lr=3e-4 [--set shaping=1.0 --set shaping_lam=0.0 --potential gold] [--learner dr_grpo]

Defaults: 32 problems × 8 samples per step from a pool of 4,096 training problems, one on-policy update per rollout
(the clip never fires), lr 5e-5, completions up to 288 tokens; probes on 300 + 300 problems (standard error ≈ 0.028).
One JSON line per step in --out; the final weights in OUT.model/ (for benchmarks/failure_modes.py).
"""

from __future__ import annotations

import argparse
import json
import time

from searchlearn.config import from_dict, parse_value
from searchlearn.learn.grpo import GRPOConfig, recipe, train_grpo
from searchlearn.loop.learners import round_rewards
from searchlearn.loop.rounds import load_local
from searchlearn.policy.prompts import format_problems
from searchlearn.search.evaluate import greedy_pass_at_1
from searchlearn.tasks.registry import DEFAULT_TASK


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--every", type=int, default=10, help="steps between greedy probes")
    p.add_argument("--learner", default="grpo", help="a GRPO-family recipe: grpo, dr_grpo, dapo, rloo, w_reinforce")
    p.add_argument("--potential", default="gold", help="the process scorer when --set shaping > 0")
    p.add_argument("--set", action="append", default=[], help="a GRPOConfig key=value")
    args = p.parse_args()
    task = DEFAULT_TASK.build()
    policy = load_local(args.model)

    def fmt(problems):
        return format_problems(problems, policy.tokenizer, task.name, "task")

    seen, held_out = fmt(task.problems("train", 300, seed=99)), fmt(task.problems("test", 300, seed=1))
    pool = fmt(task.problems("train", 4096, seed=12345))
    settings = dict(steps=args.steps, prompts_per_step=32, group_size=8, max_new_tokens=288, lr=5e-5, epochs=1,
                    minibatch_size=0, seed=0)
    settings.update({k: parse_value(v, k) for k, v in (s.split("=", 1) for s in args.set)})
    cfg = from_dict(GRPOConfig, settings, "--set ")  # typed as the config's fields (YAML reads 1e-4 as a string)
    out, t0 = open(args.out, "w"), time.time()

    def probe(step: int) -> dict:
        was = policy.model.training
        policy.model.eval()
        record = {"step": step, "train_targets": greedy_pass_at_1(policy, task, seen, 288)["pass@1"],
                  "test_targets": greedy_pass_at_1(policy, task, held_out, 288)["pass@1"]}
        policy.model.train(was)
        return record

    out.write(json.dumps(probe(0)) + "\n")

    def log(record: dict) -> None:
        keep = {k: v for k, v in record.items() if k.startswith(("learn/", "step"))}
        if record["step"] % args.every == 0:
            keep.update(probe(record["step"]))
        out.write(json.dumps(keep | {"t": round(time.time() - t0)}) + "\n")
        out.flush()

    pair, rewards = recipe(args.learner, cfg), round_rewards(args.potential, task)
    train_grpo(policy, pool, cfg, rewards.outcome, pair.advantage_fn, pair.loss_fn, log=log,
               shaping=rewards.shaping(policy, cfg))
    policy.model.save_pretrained(args.out + ".model")
    policy.tokenizer.save(args.out + ".model")


if __name__ == "__main__":
    main()
