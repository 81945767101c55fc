"""Batched beam search over many problems vs the same search run problem by problem. Not a test.

Both sides run `beam_search` with the same config and budget on the same held-out Countdown problems and the same
policy; the batched side passes all problems at once (one engine call per depth expands every live beam of every
problem; one scorer call scores every new step), the other calls it once per problem. Prints wall time, generated
tokens, engine calls and the speed ratio (the issue's goal: ≥ 5×). Sampled text differs between the sides (a row's
random draws depend on its batch), so token counts are close, not equal; tokens/s is printed too.

With --cache-compare, the two sides are instead the batched search without and with the engine's prefix cache
(policy/prefix_cache.py; size --prefix-cache tokens): the same trees (up to float rounding), fewer prefilled tokens.

    python benchmarks/beam_batched.py --model runs/demo/policy [--problems 100 --n 16 --width 4]
    python benchmarks/beam_batched.py --cache-compare [--prefix-cache 65536]

Without --model, a random model (2 layers, width 64; --layers, --hidden) whose output layer favours "\\n" and eos
stands in (short random steps).
"""

from __future__ import annotations

import argparse
import time

import torch

from searchlearn.policy.hf import load_policy
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.prefix_cache import PrefixCache
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.reward.scorers import make_scorer
from searchlearn.search.beam import BeamConfig, beam_search
from searchlearn.search.budget import Budget
from searchlearn.search.scripted import stepping_policy
from searchlearn.tasks.countdown import WORDS, CountdownTask


def random_policy(seed: int = 0, hidden: int = 64, layers: int = 2) -> LocalPolicy:
    return stepping_policy(TaskTokenizer(WORDS, max_number=999), hidden, layers, 3 * hidden, newline_bias=5.0,
                           eos_bias=3.5, seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint directory (default: a random stand-in model)")
    ap.add_argument("--hidden", type=int, default=64, help="the stand-in model's width")
    ap.add_argument("--layers", type=int, default=2, help="the stand-in model's depth")
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--n", type=int, default=16, help="budget n: n // width beams per problem")
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--scorer", default="confidence", choices=("confidence", "gold"))
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--max-batch", type=int, default=1024, help="engine rows decoded together (both sides)")
    ap.add_argument("--lookahead", type=int, default=0, help="greedy steps past each candidate before scoring")
    ap.add_argument("--prefix-cache", type=int, default=1 << 16, help="engine prefix cache size in tokens (0 = off)")
    ap.add_argument("--cache-compare", action="store_true", help="sides: batched without / with the prefix cache")
    args = ap.parse_args()

    policy = load_policy(args.model, backend="native") if args.model else random_policy(hidden=args.hidden, layers=args.layers)
    policy.engine.max_batch = args.max_batch
    task = CountdownTask()
    problems = task.problems("test", args.problems, seed=1)
    scorer = make_scorer(args.scorer, task, policy)
    cfg = BeamConfig(width=args.width, max_new_tokens=args.max_new_tokens, lookahead=args.lookahead, seed=0)
    budget = Budget(args.n)
    beam_search(problems[:2], policy, task, scorer, budget, cfg)  # warm-up (stop-token table, allocator)

    calls = {"n": 0}
    original = policy.engine.generate

    def counted(prompt_ids, params):
        calls["n"] += 1
        return original(prompt_ids, params)

    policy.engine.generate = counted
    timings = {}
    sides = ("no cache", "prefix cache") if args.cache_compare else ("batched", "one by one")
    for name in sides:
        calls["n"] = 0
        cache_tokens = 0 if name == "no cache" else args.prefix_cache
        policy.engine.prefix_cache = PrefixCache(cache_tokens) if cache_tokens else None  # empty: no warm-up hits
        t0 = time.perf_counter()
        if name != "one by one":
            results = beam_search(problems, policy, task, scorer, budget, cfg)
        else:
            results = [r for p in problems for r in beam_search([p], policy, task, scorer, budget, cfg)]
        seconds = time.perf_counter() - t0
        tokens = sum(r.ledger.generated_tokens for r in results)
        prefilled = sum(r.ledger.prefilled_tokens for r in results)
        accuracy = sum(r.answer is not None and task.verify(p, r.answer).correct
                       for p, r in zip(problems, results)) / len(problems)
        timings[name] = seconds
        print(f"{name:>12}: {seconds:7.2f} s  {tokens:8d} generated tokens  {tokens / seconds:8.0f} tok/s  "
              f"{prefilled:8.0f} prefilled  {calls['n']:5d} engine calls  accuracy {accuracy:.3f}")
    slow, fast = sides if args.cache_compare else sides[::-1]
    print(f"speed ratio ({slow} / {fast}): {timings[slow] / timings[fast]:.2f}x "
          f"over {len(problems)} problems, n={args.n}, width={args.width}, lookahead={args.lookahead}, "
          f"prefix cache {args.prefix_cache} tokens, torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
