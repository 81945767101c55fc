"""What every `searchlearn` subcommand shares: the run-directory and config flags, and the config they build."""

from __future__ import annotations

import argparse

from searchlearn.loop.config import load_loop_config
from searchlearn.recipes.demo import DemoConfig, quick


def add_common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--out", default=out, help=f"run directory (default {out})")
    p.add_argument("--config", help="YAML file of DemoConfig keys (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set init.sft.steps=500 --set task.k=4 --set phases.0.rounds=2")
    p.add_argument("--quick", action="store_true", help="the ≤60 s smoke profile")
    p.add_argument("--seed", type=int, help="shorthand for --set seed=N")
    add_workers(p)


def add_workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, help="policy replicas on Ray for search, evaluation and rollouts "
                   "(shorthand for --set workers=N; default 1: in-process, no Ray)")
    p.add_argument("--ray-address", help="join this Ray cluster (host:port, as `ray start --head` prints) instead of "
                   "starting a local one")


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("native", "vllm"), help="what samples: the project's engine (native, the "
                   "default) or vLLM, synced with the learner (shorthand for --set policy.backend=NAME)")


def worker_overrides(args) -> list[str]:
    """--workers / --ray-address (and --backend native|vllm where it is the sampling backend) as config overrides."""
    backend = getattr(args, "backend", None)
    return ([f"workers={args.workers}"] if args.workers is not None else []) + \
        ([f"ray_address=\"{args.ray_address}\""] if args.ray_address else []) + \
        ([f"policy.backend={backend}"] if backend in ("native", "vllm") else [])


def config(args) -> DemoConfig:
    """The demo's config (or its quick profile), then the --config file, then --set and --seed."""
    base = quick(DemoConfig()) if args.quick else DemoConfig()
    overrides = list(args.set) + ([f"seed={args.seed}"] if args.seed is not None else []) + worker_overrides(args)
    return load_loop_config(args.config, overrides, cls=DemoConfig, base=base)
