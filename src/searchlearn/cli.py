"""`searchlearn` command line: demo | init | eval | search | reward | loop."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from searchlearn.config import ConfigError


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--out", default=out, help=f"run directory (default {out})")
    p.add_argument("--config", help="YAML file of DemoConfig keys (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set init.sft.steps=500 --set task.k=4 --set phases.1.rounds=2")
    p.add_argument("--quick", action="store_true", help="the ≤60 s smoke profile")
    p.add_argument("--seed", type=int, help="shorthand for --set seed=N")


def _config(args):
    from searchlearn.demo import DemoConfig, quick
    from searchlearn.loop_config import load_loop_config

    base = quick(DemoConfig()) if args.quick else DemoConfig()
    overrides = list(args.set) + ([f"seed={args.seed}"] if args.seed is not None else [])
    return load_loop_config(args.config, overrides, cls=DemoConfig, base=base)


def cmd_demo(args) -> None:
    from searchlearn.demo import run_demo

    run_demo(_config(args), args.out, resume=args.resume)


def cmd_init(args) -> None:
    """Policy initialization only: traces → SFT → a checkpoint directory at OUT/policy."""
    from searchlearn.initialize import build_model, init_examples, task_tokenizer
    from searchlearn.learn.sft import train_sft
    from searchlearn.report.metrics import MetricsLog
    from searchlearn.tasks.countdown import CountdownTask

    cfg = _config(args)
    task = CountdownTask(cfg.task)
    tokenizer = task_tokenizer(task, cfg.init.model)
    model = build_model(cfg.init.model, tokenizer, cfg.seed)
    out = Path(args.out)
    if not args.resume:
        shutil.rmtree(out / "policy", ignore_errors=True)
        (out / "metrics.jsonl").unlink(missing_ok=True)
    examples = init_examples(task, tokenizer, cfg.init.n_train, cfg.seed)
    stats = train_sft(model, examples, cfg.init.sft, tokenizer.pad_id, out / "policy", tokenizer,
                      MetricsLog(out / "metrics.jsonl"), name="init")
    print(f"initialized policy at {out / 'policy'}: final loss {stats['loss']:.4f} after {stats['steps']} steps")


def _budget_ks(n: int) -> tuple[int, ...]:
    """k of pass@k / maj@k for a budget of n samples: 1, the powers of two dividing n, and n."""
    return tuple(sorted({1, n} | {2**i for i in range(1, n.bit_length()) if n % 2**i == 0}))


def cmd_eval(args) -> None:
    """Best-of-N evaluation of a checkpoint (searchlearn, HF directory or .gguf): greedy pass@1, maj@k, pass@k on
    held-out Countdown problems, or on a math JSONL file (--data, --task math) → OUT/metrics.json, OUT/report.html."""
    from searchlearn.evaluate import evaluate
    from searchlearn.policy.hf import UnsupportedCheckpoint, load_policy
    from searchlearn.policy.prompts import format_problems
    from searchlearn.report.eval_report import build_eval_report
    from searchlearn.report.metrics import write_json
    from searchlearn.tasks.countdown import CountdownTask
    from searchlearn.tasks.math import MathDataError, MathTask

    cfg = _config(args)
    task_name = args.task or ("math" if args.data else "countdown")
    if (task_name == "math") != bool(args.data):
        raise ConfigError("--data FILE.jsonl goes with --task math (and --task math needs --data)")
    samples, ks = (cfg.eval.samples, cfg.eval.ks) if args.budget is None else (args.budget, _budget_ks(args.budget))
    if samples < 1:
        raise ConfigError(f"--budget must be >= 1, got {samples}")
    try:
        task = MathTask.from_file(args.data) if task_name == "math" else CountdownTask(cfg.task)
        test = task.problems("test", cfg.eval.problems, seed=cfg.seed + 1)
        policy = load_policy(args.model, device=args.device, backend=args.backend)
    except (MathDataError, UnsupportedCheckpoint) as e:
        print(f"searchlearn eval: {e}", file=sys.stderr)
        sys.exit(2)
    test = format_problems(test, policy.tokenizer, task.name, args.prompt)  # chat template; a TaskTokenizer: as is
    ev = cfg.eval
    if args.search != "bon":
        return _eval_search(args, cfg, policy, task, test, samples)
    result = evaluate(policy, task, test, n=samples, ks=ks, temperature=ev.temperature,
                      max_new_tokens=ev.max_new_tokens, seed=cfg.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", result)
    build_eval_report(out, result, args.model, task.name, ks)
    print(" ".join(f"{k}={v:.3f}" for k, v in result["metrics"].items() if "@" in k))


def _eval_search(args, cfg, policy, task, test, budget: int) -> None:
    """`eval --search beam|dvts|mcts`: one tree search at one budget → OUT/metrics.json, OUT/search_curves.* and
    OUT/report.html (with the chosen answers of the first problems)."""
    from searchlearn.report.eval_report import build_eval_report
    from searchlearn.report.metrics import write_json
    from searchlearn.reward.process import make_scorer
    from searchlearn.search.sweep import SweepConfig, result_row, run_strategy, write_curves

    ev = cfg.eval
    try:
        sweep_cfg = SweepConfig(strategies=(args.search,), budgets=(budget,), scorer=args.scorer,
                                max_new_tokens=ev.max_new_tokens, temperature=ev.temperature,
                                step_tokens=args.step_tokens or ev.max_new_tokens, seed=cfg.seed)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    results = run_strategy(args.search, policy, task, test, make_scorer(args.scorer, task, policy), budget, sweep_cfg)
    row = {**result_row(args.search, budget, task, test, results), "scorer": args.scorer, "problems": len(test)}
    examples = [{"prompt": p.prompt, "completion": r.answer or "", "reward": task.verify(p, r.answer or "").score}
                for p, r in zip(test[:8], results[:8])]
    metrics = {"search/strategy": args.search, "search/budget": budget, "search/scorer": args.scorer,
               "search/accuracy": row["accuracy"], "ledger/generated_tokens": row["generated_tokens"],
               "ledger/reward_tokens": row["reward_tokens"], "ledger/prefilled_tokens": row["prefilled_tokens"]}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    result = {"metrics": metrics, "problems": len(test), "examples": examples}
    write_json(Path(args.out) / "metrics.json", result)
    write_curves([row], args.out, f"{len(test)} problems, {args.search} guided by {args.scorer}")
    build_eval_report(args.out, result, args.model, task.name)
    print(f"{args.search} n={budget}: accuracy={row['accuracy']:.3f} "
          f"generated_tokens/problem={row['generated_tokens']:.0f}")


def cmd_search(args) -> None:
    """Strategies × budgets on held-out Countdown problems: OUT/search_curves.json and OUT/search_curves.png."""
    from searchlearn.search.command import run_search_command

    run_search_command(args, _config(args))


def cmd_loop(args) -> None:
    """Rounds of training-time search → reward → learn → evaluate, from a LoopConfig YAML (configs/loop_*)."""
    from searchlearn.loop import run_loop
    from searchlearn.loop_config import load_loop_config

    cfg = load_loop_config(args.config_file, list(args.set))
    run_loop(cfg, args.out or str(Path("runs") / Path(args.config_file).stem), resume=args.resume)


def cmd_reward(args) -> None:
    """Learned reward models: `reward train` (MC labels → ORM/PRM/value/PPM head) and `reward eval` (vs gold)."""
    args.action_fn(args, _config(args))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="searchlearn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the whole loop on Countdown: init → evaluate → expert iteration → report")
    _common(p, "runs/demo")
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("init", help="policy initialization (SFT on reasoning traces) only")
    _common(p, "runs/init")
    p.add_argument("--resume", action="store_true", help="continue a killed run from OUT/policy's checkpoint")
    p.set_defaults(fn=cmd_init)
    p = sub.add_parser("eval", help="best-of-N evaluation of a checkpoint on Countdown or a math JSONL file")
    _common(p, "runs/eval")
    p.add_argument("--model", required=True, help="checkpoint directory (runs/demo/policy, a Hugging Face "
                                                  "checkpoint) or a .gguf file")
    p.add_argument("--data", help="JSONL file of math problems (GSM8K or MATH form), with --task math")
    p.add_argument("--task", choices=("countdown", "math"), help="default: math with --data, else countdown")
    p.add_argument("--budget", type=int, help="samples per problem N (pass@k and maj@k for k = 1, 2, 4, ..., N)")
    p.add_argument("--backend", choices=("auto", "native", "transformers"), default="auto",
                   help="the project's engine (native), transformers' generate, or auto (native where it applies)")
    p.add_argument("--prompt", choices=("none", "task", "reasoning"), default="task",
                   help="system prompt for chat models: none, the task's instruction, or the reasoning-behaviour "
                        "prompt (prompt-based policy initialization)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--search", default="bon", choices=("bon", "beam", "dvts", "mcts"),
                   help="bon: best-of-N (pass@k, maj@k); beam/dvts/mcts: that tree search at --budget")
    p.add_argument("--scorer", default="confidence",
                   help="process scorer guiding a tree search: confidence, selfeval (the policy's own verdict), "
                        "gold (Countdown only) or learned:DIR")
    p.add_argument("--step-tokens", type=int, help="most tokens per step of a tree search (default: max_new_tokens)")
    p.set_defaults(fn=cmd_eval)
    p = sub.add_parser("search", help="sweep search strategies × budgets on held-out problems: scaling curves")
    _common(p, "runs/search")
    p.add_argument("--model", required=True, help="checkpoint directory (e.g. runs/demo/policy)")
    p.add_argument("--strategies", default="bon,beam,dvts,mcts", help="comma list of bon,beam,dvts,mcts,revision")
    p.add_argument("--budgets", default="4,16,64", help="comma list of budgets n (best-of-N units)")
    p.add_argument("--scorer", default="confidence",
                   help="process scorer: confidence (the policy's own), selfeval (its own verdict on each step), gold "
                        "(Countdown's exact labels, an oracle) "
                        "or learned:DIR (a PRM from `searchlearn reward train`)")
    p.add_argument("--aggregate", default="last", choices=("last", "min", "prod", "mean"),
                   help="how a path's step scores rank it")
    p.add_argument("--width", type=int, default=4, help="beam/DVTS width and MCTS expansion k")
    p.add_argument("--problems", type=int, help="held-out problems (default data.n_test)")
    p.set_defaults(fn=cmd_search)
    p = sub.add_parser("loop", help="rounds of training-time search → reward → learn → evaluate (see configs/)")
    p.add_argument("config_file", metavar="CONFIG", help="YAML file of LoopConfig keys, e.g. configs/loop_ei_bon.yaml")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set phases.0.rounds=3 --set eval.problems=100")
    p.set_defaults(fn=cmd_loop)
    from searchlearn.reward.command import add_parser as add_reward_parser

    add_reward_parser(sub, _common).set_defaults(fn=cmd_reward)
    args = parser.parse_args(argv)
    try:
        args.fn(args)
    except (ConfigError, FileNotFoundError) as e:
        print(f"searchlearn {args.command}: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
