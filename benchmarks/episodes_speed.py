"""Multi-turn episodes: one engine call (tool answers fed inline, engine `on_stop`) against one call per turn.

Greedy and sampled episodes of a tool-calling Countdown checkpoint through its environment, both paths alternated
`--repeats` times in one run (the ratio is what to read; absolute figures move with the machine's load). Greedy
episodes are identical on both paths (tests/unit/test_inline_episodes.py), so model tokens per second compare like
for like.

    python benchmarks/episodes_speed.py runs/init0_tool_c5/policy --problems 500
"""

from __future__ import annotations

import argparse
import json
import time

from searchlearn.env import EpisodeLimits, run_episodes
from searchlearn.loop.rounds import load_local
from searchlearn.tasks.countdown import CountdownConfig, CountdownTask
from searchlearn.types import SamplingParams


def timed(policy, problems, task, params, inline: bool) -> tuple[float, int]:
    start = time.perf_counter()
    episodes = run_episodes(policy, problems, task.environment(), params, EpisodeLimits(max_tokens=params.max_new_tokens),
                            inline=inline)
    return time.perf_counter() - start, sum(ep.model_tokens for ep in episodes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a checkpoint trained with task.checks=tool")
    p.add_argument("--problems", type=int, default=500)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=400)
    args = p.parse_args()
    task = CountdownTask(CountdownConfig(checks="tool"))
    policy = load_local(args.model)
    problems = task.problems("test", args.problems, seed=1)
    for name, params in (("greedy", SamplingParams(n=1, temperature=0.0, max_new_tokens=args.max_new_tokens)),
                         ("T=1, n=4", SamplingParams(n=4, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0))):
        best = {"inline": float("inf"), "per turn": float("inf")}
        tokens = {}
        for _ in range(args.repeats):
            for path, inline in (("inline", True), ("per turn", False)):
                seconds, tokens[path] = timed(policy, problems, task, params, inline)
                best[path] = min(best[path], seconds)
        print(json.dumps({"sampling": name, "episodes": len(problems) * params.n,
                          **{f"{k} s": round(v, 2) for k, v in best.items()},
                          **{f"{k} model tokens/s": round(tokens[k] / best[k]) for k in best},
                          "speed-up": round(best["per turn"] / best["inline"], 2)}), flush=True)


if __name__ == "__main__":
    main()
