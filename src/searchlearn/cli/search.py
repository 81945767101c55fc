"""`searchlearn search`: strategies × budgets on held-out problems → OUT/search_curves.{json,png}."""

from __future__ import annotations

from searchlearn.cli.common import config
from searchlearn.config import ConfigError
from searchlearn.distributed.runtime import workers
from searchlearn.policy.hf import load_policy
from searchlearn.report.curves import write_curves
from searchlearn.search.sweep import SweepConfig, sweep


def cmd_search(args) -> None:
    """`args` from the CLI parser (model, strategies, budgets, scorer, aggregate, width, problems, out); the config
    gives the task, the held-out split's seed and eval.max_new_tokens / temperature."""
    cfg = config(args)
    try:
        sweep_cfg = SweepConfig(strategies=tuple(s for s in args.strategies.split(",") if s),
                                budgets=tuple(int(b) for b in args.budgets.split(",") if b), scorer=args.scorer,
                                aggregate=args.aggregate, width=args.width, max_new_tokens=cfg.eval.max_new_tokens,
                                temperature=cfg.eval.temperature, seed=cfg.seed)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    policy = load_policy(args.model, backend=cfg.policy.backend, vllm=cfg.policy.vllm, seed=cfg.seed)
    task = cfg.build_task()
    test = task.problems("test", args.problems or cfg.eval.problems, seed=cfg.seed + 1)

    def show(row: dict) -> None:
        print(f"{row['strategy']:>13} n={row['budget']:<4} accuracy={row['accuracy']:.3f} "
              f"generated_tokens={row['generated_tokens']:.0f}", flush=True)

    with workers(cfg.workers, cfg.ray_address):
        rows = sweep(policy, task, test, sweep_cfg, on_row=show)
    json_path, png_path = write_curves(rows, args.out, f"{len(test)} held-out problems, scorer: {args.scorer}")
    print(f"wrote {json_path} and {png_path}")
