"""`searchlearn reward train | eval`: learned reward models on Countdown, and their quality against gold labels.

train: sample solutions to training problems from a policy, label every step with Monte-Carlo rollouts
(`labels.mc_labels`; saved as OUT/mc_labels.json and reusable with --labels-from), then fit a head of --kind
orm | prm | value | ppm on the policy's backbone and save it to OUT.
eval: sample solutions to held-out problems, score their steps with each reward model (and the policy's own
confidence as a baseline), and write OUT/reward_eval.json: step-level AUC against Countdown's gold labels,
first-error accuracy (ProcessBench), and best-of-N accuracy when the model reranks the N samples.
"""

from __future__ import annotations

import json
from pathlib import Path

from searchlearn import progress
from searchlearn.reward.labels import StepLabels, mc_labels, q_margin_pairs
from searchlearn.types import Problem, SamplingParams

LABELS_FILE = "mc_labels.json"


def sample_solutions(policy, problems: list[Problem], n: int, max_new_tokens: int, seed: int,
                     temperature: float = 1.0) -> tuple[list[Problem], list[str]]:
    """n sampled completions per problem, flattened: (problem of each, text of each)."""
    params = SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    completions = policy.generate([p.prompt for p in problems], params)
    return [problems[c.prompt_index] for c in completions], [c.text for c in completions]


def save_labels(path: Path, labels: list[StepLabels]) -> None:
    rows = [{"problem": {"id": r.problem.id, "prompt": r.problem.prompt, "data": r.problem.data},
             "steps": r.steps, "hard": r.hard, "soft": r.soft, "outcome": r.outcome} for r in labels]
    path.write_text(json.dumps(rows))


def load_labels(path: Path) -> list[StepLabels]:
    rows = json.loads(Path(path).read_text())
    return [StepLabels(Problem(**r["problem"]), r["steps"], r["hard"], r["soft"], r["outcome"]) for r in rows]


def run_training(args, cfg) -> dict:
    import torch

    from searchlearn.policy.policy import LocalPolicy
    from searchlearn.reward.models import RewardModel, RewardTrainConfig, make_examples, make_pair_examples, \
        train_reward
    from searchlearn.tasks.countdown import CountdownTask

    torch.manual_seed(cfg.seed)
    task = CountdownTask(cfg.task)
    policy = LocalPolicy.load(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.labels_from:
        labels = load_labels(Path(args.labels_from))
    else:
        problems = task.problems("train", args.problems, seed=cfg.seed + 17)
        progress.say(f"reward: sampling {args.samples} solutions to {len(problems)} problems, "
                     f"{args.rollouts} rollouts per step")
        problem_of, texts = sample_solutions(policy, problems, args.samples, args.max_new_tokens, cfg.seed)
        labels = mc_labels(policy, task, problem_of, texts, m=args.rollouts, max_new_tokens=args.max_new_tokens,
                           seed=cfg.seed + 1)
    save_labels(out / LABELS_FILE, labels)
    max_len = policy.model.config.max_position_embeddings
    model = RewardModel(policy.model, args.kind)
    if args.kind == "ppm":
        data = make_pair_examples(policy.tokenizer, q_margin_pairs(labels, args.margin, args.labels))
    else:
        data = make_examples(policy.tokenizer, labels, args.kind, args.labels, max_length=max_len)
    tcfg = RewardTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=cfg.seed)
    stats = train_reward(model, data, tcfg, policy.tokenizer.pad_id, log=lambda r: progress.say(json.dumps(r)),
                         name=f"reward-{args.kind}")
    name = args.name or (args.kind if args.kind in ("orm",) else f"{args.kind}_{args.labels}")
    meta = {"name": name, "label": args.labels, "aggregate": args.aggregate, "policy": str(args.model),
            "examples": len(data), "solutions": len(labels), "train": stats}
    model.save(out, policy.tokenizer, meta)
    print(f"reward model {name} ({len(data)} examples) at {out}: final loss {stats['loss']:.4f}")
    return meta


def evaluate_scorer(scorer, task, problem_of: list[Problem], texts: list[str], gold: list[list[float]],
                    n: int, how: str = "last") -> dict:
    """Step AUC, first-error accuracy and best-of-n reranked accuracy of one process scorer on sampled solutions."""
    from searchlearn.reward.process import aggregate
    from searchlearn.reward.quality import auc, first_error

    scores = scorer(problem_of, texts)
    flat_s = [v for s in scores for v in s]
    flat_g = [v for g in gold for v in g]
    out = {"step_auc": auc(flat_s, flat_g), **first_error(scores, gold)}
    picks = []
    for start in range(0, len(texts), n):
        agg = [aggregate(s, how) if s else -1.0 for s in scores[start : start + n]]
        best = start + max(range(len(agg)), key=lambda i: agg[i])
        picks.append(task.verify(problem_of[best], texts[best]).correct)
    out[f"rerank@{n}"] = sum(picks) / len(picks) if picks else None
    return out


def run_evaluation(args, cfg) -> dict:
    import torch

    from searchlearn.policy.policy import LocalPolicy
    from searchlearn.report.metrics import write_json
    from searchlearn.reward.learned import LearnedScorer
    from searchlearn.reward.process import ConfidenceScorer, GoldScorer
    from searchlearn.search.best_of_n import majority_vote
    from searchlearn.tasks.countdown import CountdownTask

    torch.manual_seed(cfg.seed)
    task = CountdownTask(cfg.task)
    policy = LocalPolicy.load(args.model)
    problems = task.problems("test", args.problems, seed=cfg.seed + 1)
    n = args.samples
    problem_of, texts = sample_solutions(policy, problems, n, args.max_new_tokens, cfg.seed + 2)
    gold = GoldScorer(task)(problem_of, texts)
    correct = [task.verify(p, t).correct for p, t in zip(problem_of, texts)]
    maj = []
    for start in range(0, len(texts), n):
        keys = [task.answer_key(p, t) for p, t in zip(problem_of[start : start + n], texts[start : start + n])]
        i = majority_vote(keys)
        maj.append(i is not None and correct[start + i])
    result: dict = {"_data": {"problems": len(problems), "samples": n, "steps": sum(map(len, gold)),
                              "good_step_share": sum(v for g in gold for v in g) / max(1, sum(map(len, gold))),
                              f"pass@{n}": sum(any(correct[s : s + n]) for s in range(0, len(texts), n))
                              / len(problems),
                              f"maj@{n}": sum(maj) / len(maj), "sample_accuracy": sum(correct) / len(correct)}}
    scorers = {"confidence": (ConfidenceScorer(policy, task), "mean")}
    for directory in args.rm:
        scorer = LearnedScorer.load(directory, task)
        meta = json.loads((Path(directory) / "reward_config.json").read_text())
        scorers[meta.get("name") or Path(directory).name] = (scorer, args.aggregate or scorer.how)
    for name, (scorer, how) in scorers.items():
        progress.say(f"reward eval: {name}")
        result[name] = evaluate_scorer(scorer, task, problem_of, texts, gold, n, how)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "reward_eval.json", result)
    for name in scorers:
        r = result[name]
        auc_ = "n/a" if r["step_auc"] is None else f"{r['step_auc']:.3f}"
        print(f"{name:>12}: step_auc={auc_} first_error_acc={r['first_error_acc']:.3f} "
              f"rerank@{n}={r[f'rerank@{n}']:.3f}")
    return result


def add_parser(sub, common):
    """The `reward` subcommand with its `train` and `eval` actions (cli.main sets its `fn`); returns its parser."""
    p = sub.add_parser("reward", help="learned reward models: train (MC labels → ORM/PRM/value/PPM) and eval vs gold")
    actions = p.add_subparsers(dest="action", required=True)
    t = actions.add_parser("train", help="label sampled solutions by MC rollouts, train a reward head, save it")
    common(t, "runs/reward")
    t.add_argument("--model", required=True, help="policy checkpoint directory (e.g. runs/demo/policy)")
    t.add_argument("--kind", choices=("orm", "prm", "value", "ppm"), default="prm")
    t.add_argument("--labels", choices=("soft", "hard"), default="soft", help="MC label kind (prm/value/ppm)")
    t.add_argument("--labels-from", help="reuse OUT/mc_labels.json of an earlier run instead of rolling out")
    t.add_argument("--problems", type=int, default=64, help="training problems to sample solutions for")
    t.add_argument("--samples", type=int, default=4, help="solutions sampled per problem")
    t.add_argument("--rollouts", type=int, default=8, help="M completions per step prefix")
    t.add_argument("--max-new-tokens", type=int, default=192)
    t.add_argument("--steps", type=int, default=300, help="optimizer steps")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--margin", type=float, default=0.5, help="PPM: least Q difference of a sibling pair")
    t.add_argument("--aggregate", choices=("last", "min", "prod", "mean"), default="min",
                   help="how the saved scorer turns step scores into a solution score")
    t.add_argument("--name", help="the model's name in reward_eval.json (default kind_labels)")
    t.set_defaults(action_fn=run_training)
    e = actions.add_parser("eval", help="step AUC / first-error accuracy vs gold labels → OUT/reward_eval.json")
    common(e, "runs/reward_eval")
    e.add_argument("--model", required=True, help="policy checkpoint directory that samples the solutions")
    e.add_argument("--rm", action="append", default=[], help="reward model directory (repeatable)")
    e.add_argument("--problems", type=int, default=50, help="held-out problems")
    e.add_argument("--samples", type=int, default=8, help="solutions per problem (also N of rerank@N)")
    e.add_argument("--max-new-tokens", type=int, default=192)
    e.add_argument("--aggregate", choices=("last", "min", "prod", "mean"), help="override each model's aggregate")
    e.set_defaults(action_fn=run_evaluation)
    return p
