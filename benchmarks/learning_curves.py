"""Learners compared at equal samples: held-out greedy pass@1 against samples drawn, one curve per learner and seed.

Each learner runs `searchlearn loop` from the same checkpoint with the same budget of training samples, its curve
written every `--every` samples' worth of steps (loop/curve.py); the figure puts every learner on one log-x axis (mean
over seeds, with each seed's final point) and the JSON keeps every point.

    python benchmarks/learning_curves.py --init runs/demo/policy --learners grpo,dr_grpo,rloo,expert_iteration \\
        --samples 20000 --seeds 0,1,2 --out runs/curves

Online learners (GRPO family) draw N × G samples per step; expert iteration draws `--ei-n` samples per problem in
rounds of `--ei-problems` problems (best-of-N search, then SFT on the kept solutions and as many solver traces).
tree_grpo draws the same N × G samples per step as a tree (`--tree`: G/4 root chains, one level of one branch point
per chain with 3 continuations, so that G = roots × 4), so fewer generated tokens: compare it with `--x
generated_tokens`; vineppo adds `vine_rollouts` Monte-Carlo rollouts per step of every chain (counted as generated).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from searchlearn.loop.config import load_loop_config
from searchlearn.loop.curve import mean_curve
from searchlearn.loop.rounds import run_loop
from searchlearn.report.loop_plots import learning_curves

ONLINE = ("grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp", "w_reinforce", "tree_grpo", "vineppo")


def overrides(learner: str, seed: int, args) -> list[str]:
    """The loop settings of one learner and seed at the shared budget."""
    common = [f"init_from={args.init.format(seed=seed)}", f"eval.problems={args.eval_problems}", "eval.samples=1",
              "eval.ks=[1]", f"eval.max_new_tokens={args.max_new_tokens}",
              f"phases.0.searcher.max_new_tokens={args.max_new_tokens}", f"curve.problems={args.eval_problems}",
              f"curve.train_problems={args.train_problems}"]
    if learner in ONLINE:
        per_step = args.prompts * args.group
        steps = max(1, args.samples // per_step)
        group = args.group
        if learner == "tree_grpo":  # the same samples per step: G/4 roots, each with 1 branch point × 3 continuations
            if args.group % 4:
                raise SystemExit("tree_grpo: --group must be a multiple of 4 (roots × (1 + 3))")
            group = args.group // 4
            common = common + ["phases.0.grpo.tree_levels=1", "phases.0.grpo.tree_points=1",
                               "phases.0.grpo.tree_children=3"]
        return common + [f"phases.0.learner={learner}", "phases.0.rounds=1", f"phases.0.problems={args.pool}",
                         f"phases.0.grpo.steps={steps}", f"phases.0.grpo.prompts_per_step={args.prompts}",
                         f"phases.0.grpo.group_size={group}", f"phases.0.grpo.lr={args.lr}",
                         f"phases.0.grpo.max_new_tokens={args.max_new_tokens}",
                         "phases.0.grpo.epochs=1", "phases.0.grpo.minibatch_size=0", "phases.0.grpo.checkpoint_every=10",
                         f"curve.every={max(1, args.every // per_step)}"] + args.set
    if learner == "expert_iteration":
        rounds = max(1, args.samples // (args.ei_problems * args.ei_n))
        return common + ["phases.0.learner=expert_iteration", f"phases.0.rounds={rounds}",
                         f"phases.0.problems={args.ei_problems}", f"phases.0.searcher.n={args.ei_n}",
                         "phases.0.keep_per_problem=1", "phases.0.solver_traces=1.0", "phases.0.sft.steps=60",
                         "phases.0.sft.lr=3e-4", "phases.0.sft.warmup_steps=5", "curve.every=0"] + args.set
    raise SystemExit(f"unknown learner {learner!r}: choose from {', '.join(ONLINE + ('expert_iteration',))}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--init", required=True, help="the checkpoint every learner starts from; {seed} in it is each "
                   "seed's own (e.g. runs/init1k_{seed}/policy)")
    p.add_argument("--learners", default="grpo,expert_iteration")
    p.add_argument("--samples", type=int, default=20000, help="training samples per learner and seed")
    p.add_argument("--seeds", default="0")
    p.add_argument("--prompts", type=int, default=32, help="online learners: problems per step (N)")
    p.add_argument("--group", type=int, default=8, help="online learners: samples per problem (G)")
    p.add_argument("--lr", type=float, default=5e-5, help="online learners' learning rate")
    p.add_argument("--pool", type=int, default=4096, help="online learners: training problems in the pool")
    p.add_argument("--ei-problems", type=int, default=512, help="expert iteration: problems per round")
    p.add_argument("--ei-n", type=int, default=4, help="expert iteration: samples per problem")
    p.add_argument("--max-new-tokens", type=int, default=288, help="completion cap of every sample and evaluation")
    p.add_argument("--every", type=int, default=2560, help="samples between curve points (online learners)")
    p.add_argument("--eval-problems", type=int, default=1000, help="held-out problems of every point")
    p.add_argument("--train-problems", type=int, default=0, help="training-split problems of every point")
    p.add_argument("--set", action="append", default=[], help="more loop overrides for every learner")
    p.add_argument("--x", default="samples", choices=("samples", "generated_tokens", "train_tokens", "wall_s"),
                   help="the figure's compute axis")
    p.add_argument("--out", default="runs/curves")
    args = p.parse_args()
    out = Path(args.out)
    results: dict[str, dict[int, list[dict]]] = {}
    for learner in args.learners.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            run_dir = out / f"{learner}_seed{seed}"
            done = run_dir / "metrics.json"
            if not done.exists():
                cfg = load_loop_config(None, overrides(learner, seed, args) + [f"seed={seed}"])
                run_loop(cfg, run_dir, resume=run_dir.exists())
            results.setdefault(learner, {})[seed] = json.loads(done.read_text())["curve"]
            final = results[learner][seed][-1]
            print(f"{learner} seed {seed}: pass@1 {results[learner][seed][0]['pass@1']:.3f} -> "
                  f"{final['pass@1']:.3f} at {final['samples']:,} samples", flush=True)
    (out / "curves.json").write_text(json.dumps(results, indent=1))
    mean = {}
    for learner, by_seed in results.items():
        runs = list(by_seed.values())
        mean[f"{learner} ({len(runs)} seeds)"] = mean_curve(runs)
        finals = [r[-1]["pass@1"] for r in runs]
        sd = statistics.stdev(finals) if len(finals) > 1 else float("nan")
        print(f"{learner}: final greedy pass@1 {statistics.mean(finals):.3f} ± {sd:.3f} (sd over seeds)")
    learning_curves(mean, out / "learning_curves.png", x=args.x, title="Learners from one checkpoint (mean over seeds)")
    print(f"wrote {out / 'curves.json'} and {out / 'learning_curves.png'}")


if __name__ == "__main__":
    main()
