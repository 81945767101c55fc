"""`searchlearn` command line: demo | init | eval | search | reward | loop | sandbox.

Every choice a flag offers (tasks, searchers, scorers, reward-model kinds) is read from its registry. A config or
checkpoint that cannot be used ends the command with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from searchlearn.cli import evaluate, reward, sandbox, search
from searchlearn.cli.common import add_backend, add_common, add_workers, config, worker_overrides
from searchlearn.config import ConfigError
from searchlearn.policy.vllm_policy import VLLMUnavailable
from searchlearn.policy.weights import CheckpointError
from searchlearn.reward.aggregate import AGGREGATES
from searchlearn.reward.scorers import SCORERS
from searchlearn.search.registry import SEARCHERS
from searchlearn.tasks.registry import TASKS


def cmd_demo(args) -> None:
    from searchlearn.recipes.demo import run_demo

    run_demo(config(args), args.out, resume=args.resume)


def cmd_init(args) -> None:
    """Policy initialization only: traces → SFT → a checkpoint directory at OUT/policy."""
    from searchlearn.distributed.runtime import workers
    from searchlearn.learn.sft import train_sft
    from searchlearn.loop.initialize import build_model, init_examples, task_tokenizer
    from searchlearn.report.metrics import MetricsLog

    cfg = config(args)
    task = cfg.build_task()
    tokenizer = task_tokenizer(task, cfg.init.model)
    model = build_model(cfg.init.model, tokenizer, cfg.seed)
    out = Path(args.out)
    if not args.resume:
        shutil.rmtree(out / "policy", ignore_errors=True)
        (out / "metrics.jsonl").unlink(missing_ok=True)
    examples = init_examples(task, tokenizer, cfg.init.n_train, cfg.seed, cfg.init.model.max_position_embeddings,
                             cfg.init.drills)
    with workers(cfg.workers, cfg.ray_address):  # --workers N: data-parallel SFT on N ranks
        stats = train_sft(model, examples, cfg.init.sft, tokenizer.pad_id, out / "policy", tokenizer,
                          MetricsLog(out / "metrics.jsonl"), name="init")
    print(f"initialized policy at {out / 'policy'}: final loss {stats['loss']:.4f} after {stats['steps']} steps")


def cmd_loop(args) -> None:
    """Rounds of training-time search → reward → learn → evaluate, from a LoopConfig YAML (configs/loop_*)."""
    from searchlearn.loop.config import load_loop_config
    from searchlearn.loop.rounds import run_loop

    cfg = load_loop_config(args.config_file, list(args.set) + worker_overrides(args))
    run_loop(cfg, args.out or str(Path("runs") / Path(args.config_file).stem), resume=args.resume)


def _scorer_help(what: str) -> str:
    return f"process scorer {what}: {', '.join(n + (':DIR' if n == 'learned' else '') for n in SCORERS.names())}"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="searchlearn", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the whole loop on Countdown: init → evaluate → GRPO → evaluate → search and "
                                    "reward stages → report")
    add_common(p, "runs/demo")
    add_backend(p)
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("init", help="policy initialization (SFT on reasoning traces) only")
    add_common(p, "runs/init")
    p.add_argument("--resume", action="store_true", help="continue a killed run from OUT/policy's checkpoint")
    p.set_defaults(fn=cmd_init)
    p = sub.add_parser("eval", help="best-of-N evaluation of a checkpoint on Countdown or a math JSONL file")
    add_common(p, "runs/eval")
    p.add_argument("--model", required=True, help="checkpoint directory (runs/demo/policy, a Hugging Face "
                                                  "checkpoint) or a .gguf file")
    p.add_argument("--data", help="JSONL file of math problems (GSM8K or MATH form), with --task math")
    p.add_argument("--task", help=f"{', '.join(TASKS.names())} or your own, path/to/file.py:Class (default: math "
                   "with --data, else the config's task_name, countdown)")
    p.add_argument("--budget", type=int, help="samples per problem N (pass@k and maj@k for k = 1, 2, 4, ..., N)")
    p.add_argument("--backend", choices=("auto", "native", "transformers", "vllm"), default="auto",
                   help="the project's engine (native), transformers' generate, auto (native where it applies) or "
                        "vLLM (settings: --set policy.vllm.KEY=VALUE)")
    p.add_argument("--prompt", choices=("none", "task", "reasoning"), default="task",
                   help="system prompt for chat models: none, the task's instruction, or the reasoning-behaviour "
                        "prompt (prompt-based policy initialization)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--search", default="bon", choices=SEARCHERS.names(),
                   help="bon: best-of-N (pass@k, maj@k); any other: that search at --budget")
    p.add_argument("--scorer", default="confidence", help=_scorer_help("guiding a search"))
    p.add_argument("--step-tokens", type=int, help="most tokens per step of a tree search (default: max_new_tokens)")
    p.set_defaults(fn=evaluate.cmd_eval)
    p = sub.add_parser("search", help="sweep search strategies × budgets on held-out problems: scaling curves")
    add_common(p, "runs/search")
    p.add_argument("--model", required=True, help="checkpoint directory (e.g. runs/demo/policy)")
    p.add_argument("--strategies", default="bon,beam,dvts,mcts", help=f"comma list of {','.join(SEARCHERS.names())}")
    p.add_argument("--budgets", default="4,16,64", help="comma list of budgets n (best-of-N units)")
    p.add_argument("--scorer", default="confidence", help=_scorer_help("guiding the searches"))
    p.add_argument("--aggregate", default="last", choices=list(AGGREGATES), help="how a path's step scores rank it")
    p.add_argument("--width", type=int, default=4, help="beam/DVTS width and MCTS expansion k")
    p.add_argument("--problems", type=int, help="held-out problems (default eval.problems)")
    add_backend(p)
    p.set_defaults(fn=search.cmd_search)
    p = sub.add_parser("loop", help="rounds of training-time search → reward → learn → evaluate (see configs/)")
    p.add_argument("config_file", metavar="CONFIG", help="YAML file of LoopConfig keys, e.g. configs/loop_ei_bon.yaml")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set phases.0.rounds=3 --set eval.problems=100")
    add_workers(p)
    add_backend(p)
    p.set_defaults(fn=cmd_loop)
    reward.add_parser(sub)
    sandbox.add_parser(sub)
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        args.fn(args)
    except (ConfigError, CheckpointError, FileNotFoundError, VLLMUnavailable) as e:
        print(f"searchlearn {args.command}: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
