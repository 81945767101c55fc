"""Search with the Python API: a task, a policy, a process scorer and a searcher, on held-out problems.

    python examples/search_api.py runs/your_task/policy --search beam --budget 8
    python examples/search_api.py --train 600 --search bon --budget 4 --option select=weighted --task hi=9

The policy is a checkpoint directory (what `searchlearn loop examples/your_task.yaml` leaves in OUT/policy), or, with
--train STEPS, a tiny one trained here from scratch on the task's traces (the loop's policy initialization). Prints
greedy pass@1, the search's accuracy, and its compute ledger: what the search spent, summed over the problems.
"""

from __future__ import annotations

import argparse

from searchlearn.config import from_dict, parse_value
from searchlearn.learn.sft import SFTConfig, train_sft
from searchlearn.loop.initialize import ModelSize, build_model, init_examples, task_tokenizer
from searchlearn.policy.hf import load_policy
from searchlearn.policy.policy import LocalPolicy
from searchlearn.reward.scorers import SCORERS, make_scorer
from searchlearn.search.budget import Budget
from searchlearn.search.evaluate import greedy_pass_at_1
from searchlearn.search.registry import SEARCHERS
from searchlearn.types import Ledger
from your_task import AddConfig, AddTask  # the neighbouring file (running this script puts examples/ on the path)


def train_tiny(task, steps: int, seed: int = 0) -> LocalPolicy:
    """A tiny Llama (64 wide, 2 layers) trained from scratch on the task's solver traces."""
    size = ModelSize(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=192, max_position_embeddings=64)
    tokenizer = task_tokenizer(task, size)
    model = build_model(size, tokenizer, seed)
    examples = init_examples(task, tokenizer, n_train=8 * steps, seed=seed)
    train_sft(model, examples, SFTConfig(steps=steps, lr=5e-3, warmup_steps=20), tokenizer.pad_id)
    return LocalPolicy(model, tokenizer)


def settings(pairs: list[str]) -> dict:
    """KEY=VALUE arguments as a dict, each value read as YAML ("9" is a number, "weighted" a string)."""
    return {k: parse_value(v, k) for k, v in (kv.split("=", 1) for kv in pairs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("policy", nargs="?", help="checkpoint directory, e.g. runs/your_task/policy")
    p.add_argument("--train", type=int, metavar="STEPS", help="instead, train a tiny policy here for STEPS SFT steps")
    p.add_argument("--task", action="append", default=[], metavar="KEY=VALUE",
                   help="a task setting (AddConfig's keys, as under the loop config's `task:`), e.g. --task hi=9")
    p.add_argument("--problems", type=int, default=32, help="held-out problems to search")
    p.add_argument("--search", default="beam", choices=SEARCHERS.names(), help="the searcher")
    p.add_argument("--budget", type=int, default=8, help="budget n per problem, in best-of-N units")
    p.add_argument("--scorer", default="confidence", help=f"process scorer: {', '.join(SCORERS.names())}")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of the searcher's config, e.g. --option width=2 --option select=weighted")
    p.add_argument("--max-new-tokens", type=int, default=40, help="completion cap")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if (args.policy is None) == (args.train is None):
        p.error("give a checkpoint directory or --train STEPS (one of them)")

    task = AddTask(from_dict(AddConfig, settings(args.task)))  # AddTask() for the defaults
    policy = train_tiny(task, args.train, args.seed) if args.train else load_policy(args.policy)
    problems = task.problems("test", args.problems, seed=args.seed + 1)  # the loop's held-out problems for this seed
    scorer = make_scorer(args.scorer, task, policy)  # (problems, prefixes) -> a score per step
    searcher = SEARCHERS[args.search]  # .search: (problems, policy, task, scorer, budget, config) -> results
    config = from_dict(searcher.config, {"max_new_tokens": args.max_new_tokens, "delimiter": task.step_delimiter,
                                         "seed": args.seed, **settings(args.option)})

    greedy = greedy_pass_at_1(policy, task, problems, args.max_new_tokens, args.seed)["pass@1"]
    results = searcher.search(problems, policy, task, scorer, Budget(args.budget), config)
    accuracy = sum(task.verify(q, r.answer or "").correct for q, r in zip(problems, results)) / len(problems)
    spent = Ledger()
    for r in results:
        spent.add(r.ledger)
    print(f"{args.search} n={args.budget} scorer={args.scorer} on {len(problems)} held-out problems: "
          f"accuracy {accuracy:.3f} (greedy pass@1 {greedy:.3f})")
    print("ledger: " + " ".join(f"{k}={v:.4g}" for k, v in vars(spent).items()))
    for q, r in list(zip(problems, results))[:3]:
        print(f"  {q.prompt.strip()} -> {(r.answer or '').strip()!r}: {task.verify(q, r.answer or '').reason}")


if __name__ == "__main__":
    main()
