"""`searchlearn` command line: demo | init | eval."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from searchlearn.config import ConfigError, load


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--out", default=out, help=f"run directory (default {out})")
    p.add_argument("--config", help="YAML file of DemoConfig keys (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set init.steps=500 --set task.k=4")
    p.add_argument("--quick", action="store_true", help="the ≤60 s smoke profile")
    p.add_argument("--seed", type=int, help="shorthand for --set seed=N")


def _config(args):
    from searchlearn.demo import DemoConfig, quick

    base = quick(DemoConfig()) if args.quick else DemoConfig()
    overrides = list(args.set) + ([f"seed={args.seed}"] if args.seed is not None else [])
    return load(DemoConfig, args.config, overrides, base=base)


def cmd_demo(args) -> None:
    from searchlearn.demo import run_demo

    run_demo(_config(args), args.out, resume=args.resume)


def cmd_init(args) -> None:
    """Policy initialization only: traces → SFT → a checkpoint directory at OUT/policy."""
    from searchlearn.demo import build_model, init_examples
    from searchlearn.learn.sft import train_sft
    from searchlearn.policy.tokenizer import TaskTokenizer
    from searchlearn.report.metrics import MetricsLog
    from searchlearn.tasks.countdown import CountdownTask

    cfg = _config(args)
    task = CountdownTask(cfg.task)
    tokenizer = TaskTokenizer(task.words, max_number=cfg.task.max_intermediate)
    model = build_model(cfg, tokenizer)
    out = Path(args.out)
    stats = train_sft(model, init_examples(task, tokenizer, cfg), cfg.init, tokenizer.pad_id, out / "policy",
                      tokenizer, MetricsLog(out / "metrics.jsonl"), name="init")
    print(f"initialized policy at {out / 'policy'}: final loss {stats['loss']:.4f} after {stats['steps']} steps")


def cmd_eval(args) -> None:
    """Evaluate a checkpoint on held-out Countdown problems: greedy pass@1, maj@k, pass@k."""
    from searchlearn.evaluate import evaluate
    from searchlearn.policy.policy import LocalPolicy
    from searchlearn.report.metrics import write_json
    from searchlearn.tasks.countdown import CountdownTask

    cfg = _config(args)
    policy = LocalPolicy.load(args.model)
    task = CountdownTask(cfg.task)
    test = task.problems("test", cfg.data.n_test, seed=cfg.seed + 1)
    ev = cfg.eval
    result = evaluate(policy, task, test, n=ev.samples, ks=ev.ks, temperature=ev.temperature,
                      max_new_tokens=ev.max_new_tokens, seed=cfg.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", result)
    print(" ".join(f"{k}={v:.3f}" for k, v in result["metrics"].items() if "@" in k))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="searchlearn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the whole loop on Countdown: init → evaluate → expert iteration → report")
    _common(p, "runs/demo")
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("init", help="policy initialization (SFT on reasoning traces) only")
    _common(p, "runs/init")
    p.set_defaults(fn=cmd_init)
    p = sub.add_parser("eval", help="evaluate a checkpoint on held-out Countdown problems")
    _common(p, "runs/eval")
    p.add_argument("--model", required=True, help="checkpoint directory (e.g. runs/demo/policy)")
    p.set_defaults(fn=cmd_eval)
    args = parser.parse_args(argv)
    try:
        args.fn(args)
    except (ConfigError, FileNotFoundError) as e:
        print(f"searchlearn {args.command}: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
