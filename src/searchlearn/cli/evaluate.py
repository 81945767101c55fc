"""`searchlearn eval`: a checkpoint on held-out problems, by best-of-N (pass@k, maj@k) or one tree search."""

from __future__ import annotations

import sys
from pathlib import Path

from searchlearn.cli.common import config
from searchlearn.config import ConfigError
from searchlearn.distributed.runtime import workers
from searchlearn.distributed.shard import WithPolicy
from searchlearn.policy.hf import UnsupportedCheckpoint, load_policy
from searchlearn.policy.prompts import format_problems
from searchlearn.report.curves import write_curves
from searchlearn.report.eval_report import build_eval_report
from searchlearn.report.metrics import write_json
from searchlearn.reward.scorers import make_scorer
from searchlearn.search.evaluate import evaluate
from searchlearn.search.sweep import SweepConfig, result_row, run_strategy
from searchlearn.tasks.math import MathDataError, MathTask
from searchlearn.tasks.registry import task_spec


def _budget_ks(n: int) -> tuple[int, ...]:
    """k of pass@k / maj@k for a budget of n samples: 1, the powers of two dividing n, and n."""
    return tuple(sorted({1, n} | {2**i for i in range(1, n.bit_length()) if n % 2**i == 0}))


def cmd_eval(args) -> None:
    """Best-of-N evaluation of a checkpoint (searchlearn, HF directory or .gguf): greedy pass@1, maj@k, pass@k on
    held-out Countdown problems, or on a math JSONL file (--data, --task math) → OUT/metrics.json, OUT/report.html."""
    cfg = config(args)
    task_name = args.task or ("math" if args.data else cfg.task_name)
    if (task_name == "math") != bool(args.data):
        raise ConfigError("--data FILE.jsonl goes with --task math (and --task math needs --data)")
    samples, ks = (cfg.eval.samples, cfg.eval.ks) if args.budget is None else (args.budget, _budget_ks(args.budget))
    if samples < 1:
        raise ConfigError(f"--budget must be >= 1, got {samples}")
    try:
        spec = task_spec(task_name)
        task = (MathTask.from_file(args.data) if task_name == "math"
                else spec.build(cfg.task if isinstance(cfg.task, spec.config) else None))
        test = task.problems("test", cfg.eval.problems, seed=cfg.seed + 1)
        policy = load_policy(args.model, device=args.device, backend=args.backend, vllm=cfg.policy.vllm,
                             seed=cfg.seed)
    except (MathDataError, UnsupportedCheckpoint) as e:
        print(f"searchlearn eval: {e}", file=sys.stderr)
        sys.exit(2)
    test = format_problems(test, policy.tokenizer, task.name, args.prompt)  # chat template; a TaskTokenizer: as is
    ev = cfg.eval
    with workers(cfg.workers, cfg.ray_address):
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
    ev = cfg.eval
    try:
        sweep_cfg = SweepConfig(strategies=(args.search,), budgets=(budget,), scorer=args.scorer,
                                max_new_tokens=ev.max_new_tokens, temperature=ev.temperature,
                                step_tokens=args.step_tokens or ev.max_new_tokens, seed=cfg.seed)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    results = run_strategy(args.search, policy, task, test, WithPolicy(make_scorer, (args.scorer, task)), budget,
                           sweep_cfg)
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
