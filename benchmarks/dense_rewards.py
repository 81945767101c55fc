"""Dense process rewards in online RL against the outcome reward alone, at equal generated tokens. Not a test.

From one checkpoint, each (method, seed) trains a fresh copy with the same learner settings, problems and sampling
seeds, and differs only in the potential that shapes the learner's credit (learn/dense_rewards.py):
`outcome` (none), `gold` (Countdown's exact step values: the ceiling) or `learned:DIR` (a trained PRM). Then greedy
pass@1 and one sample's accuracy on the same held-out problems for every run (paired). One JSON line per run goes to
--out as it finishes, and a table is printed at the end (mean ± sd over seeds, and the mean paired difference to
`outcome` with its standard error).

    python benchmarks/dense_rewards.py --model runs/demo/policy --methods outcome,gold,learned:runs/prm \\
        --learner grpo --seeds 0,1,2 --out runs/dense_grpo.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from searchlearn.learn.dense_rewards import reward_tokens
from searchlearn.learn.grpo import GRPOConfig, recipe, train_grpo
from searchlearn.learn.ppo import PPOConfig, train_ppo
from searchlearn.loop.learners import round_rewards
from searchlearn.loop.rounds import load_local, round_seed
from searchlearn.policy.prompts import format_problems
from searchlearn.search.evaluate import evaluate
from searchlearn.tasks.registry import DEFAULT_TASK, DefaultTaskConfig

CONFIGS = {  # the loop's settings (configs/loop_grpo.yaml; PhaseConfig's PPO defaults)
    "grpo": GRPOConfig(steps=24, prompts_per_step=16, group_size=8, max_new_tokens=288, lr=2e-5, epochs=2,
                       minibatch_size=32, log_every=1),
    "ppo": PPOConfig(steps=24, prompts_per_step=32, group_size=4, max_new_tokens=288, lr=2e-5, epochs=2,
                     minibatch_size=32, log_every=1),
}


def run(args, task, test, method: str, seed: int) -> dict:
    """One training run from the checkpoint and its held-out evaluation. `method` is `outcome` or a scorer name,
    optionally with GRPO's step-level λ after an @ (`gold@0.5`; default --lam)."""
    policy = load_local(args.model)
    scorer, _, lam = method.partition("@")
    cfg = replace(CONFIGS[args.learner], seed=seed, steps=args.steps, lr=args.lr,
                  shaping=0.0 if scorer == "outcome" else args.coef)
    if args.learner == "grpo":
        cfg = replace(cfg, shaping_lam=float(lam or args.lam))
    scorer = "verifier" if scorer == "outcome" else scorer
    problems = format_problems(task.problems("train", 1024, seed=round_seed(seed, 1)), policy.tokenizer, task.name,
                               "task")
    rewards = round_rewards(scorer, task)
    shaping = rewards.shaping(policy, cfg)
    records: list[dict] = []
    start = time.time()
    if args.learner == "grpo":
        pair = recipe(args.recipe, cfg)
        train_grpo(policy, problems, cfg, rewards.outcome, pair.advantage_fn, pair.loss_fn, log=records.append,
                   shaping=shaping)
    else:
        train_ppo(policy, problems, cfg, rewards.outcome, dense_reward=shaping and shaping.token_rewards,
                  log=records.append)
    seconds = time.time() - start
    steps = {r["step"]: r for r in records if "step" in r}
    result = evaluate(policy, task, test, n=1, ks=(1,), max_new_tokens=288, seed=0)["metrics"]
    return {"method": method, "seed": seed, "learner": args.learner, "recipe": args.recipe, "coef": cfg.shaping,
            "lam": getattr(cfg, "shaping_lam", None), "steps": args.steps, "lr": args.lr, "train_seconds": round(seconds, 1),
            "generated_tokens": sum(r.get("ledger/generated_tokens", 0) for r in steps.values()),
            "reward_tokens": reward_tokens(shaping.scorer) if shaping else 0,
            "train_solved": [round(r["learn/solved"], 4) for r in steps.values()],
            "pass@1": result["pass@1"], "sample_accuracy": result["maj@1"], "held_out": len(test)}


def table(rows: list[dict]) -> str:
    by = {}
    init = [r for r in rows if r["method"] == "init"]
    for r in rows:
        if r["method"] != "init":
            by.setdefault(r["method"], {})[r["seed"]] = r
    base = by.get("outcome", {})
    header = ("| method | greedy pass@1 | Δ vs outcome (paired) | sample acc. | train solved, last 8 steps "
              "| gen. tokens | reward tokens |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    lines += [f"| start (no training) | {r['pass@1']:.3f} | | {r['sample_accuracy']:.3f} | | | |" for r in init]
    for method, runs in by.items():
        p = [r["pass@1"] for r in runs.values()]
        s = [r["sample_accuracy"] for r in runs.values()]
        late = [statistics.mean(r["train_solved"][-8:]) for r in runs.values()]
        diffs = [runs[k]["pass@1"] - base[k]["pass@1"] for k in runs if k in base]
        delta = (f"{statistics.mean(diffs):+.3f} ± {statistics.stdev(diffs) / len(diffs) ** 0.5:.3f}"
                 if len(diffs) > 1 and method != "outcome" else "–")
        lines.append(f"| {method} | {_ms(p)} | {delta} | {_ms(s)} | {_ms(late)} | "
                     f"{statistics.mean(r['generated_tokens'] for r in runs.values()):,.0f} | "
                     f"{statistics.mean(r['reward_tokens'] for r in runs.values()):,.0f} |")
    return "\n".join(lines)


def _ms(xs) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="starting checkpoint")
    parser.add_argument("--methods", default="outcome,gold",
                        help="comma list: outcome | gold | learned:DIR | any scorer name, each optionally @λ")
    parser.add_argument("--learner", choices=sorted(CONFIGS), default="grpo")
    parser.add_argument("--recipe", default="grpo", help="GRPO family: grpo | dr_grpo | rloo | ...")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--coef", type=float, default=1.0, help="shaping α")
    parser.add_argument("--lam", type=float, default=1.0, help="GRPO's step-level λ")
    parser.add_argument("--held-out", type=int, default=1000)
    parser.add_argument("--out", required=True, help="JSON lines, one per run (runs already there are kept)")
    args = parser.parse_args()
    task = DEFAULT_TASK.build(DefaultTaskConfig())
    tokenizer = load_local(args.model).tokenizer
    test = format_problems(task.problems("test", args.held_out, seed=1), tokenizer, task.name, "task")
    out = Path(args.out)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    done = {(r["method"], r["seed"]) for r in rows}
    if ("init", None) not in done:  # the starting checkpoint on the same held-out problems: what training changed
        start = evaluate(load_local(args.model), task, test, n=1, ks=(1,), max_new_tokens=288, seed=0)["metrics"]
        row = {"method": "init", "seed": None, "pass@1": start["pass@1"], "sample_accuracy": start["maj@1"],
               "held_out": len(test)}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for method in args.methods.split(","):
            if (method, seed) in done:
                continue
            row = run(args, task, test, method, seed)
            print(json.dumps({k: v for k, v in row.items() if k != "train_solved"}), flush=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
    print(table(rows))


if __name__ == "__main__":
    main()
