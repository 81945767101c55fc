"""`searchlearn reward train | eval`: learned reward models on the default task (Countdown), and their quality
against gold labels.

train: sample solutions to training problems from a policy, label every step with Monte-Carlo rollouts
(`labels.mc_labels`; saved as OUT/mc_labels.json and reusable with --labels-from), then fit a head of --kind
orm | prm | value | ppm on the policy's backbone and save it to OUT. --kind disc instead trains a discriminator of
expert traces vs policy samples adversarially, round by round (GAIL/AIRL; `reward/discriminator.py`).
eval: sample solutions to held-out problems, score their steps with each reward model (and, as baselines, the
policy's own confidence and self-evaluation, `reward/selfeval.py`), and write OUT/reward_eval.json: step-level AUC
against Countdown's gold labels, first-error accuracy (ProcessBench), best-of-N accuracy when the model reranks the N
samples, outcome AUC (the aggregated solution score against the verifier's correct/incorrect), and the calibration of
the step scores against gold (ECE and reliability bins; the diagram in OUT/calibration.png).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from searchlearn import progress
from searchlearn.cli.common import add_common, config
from searchlearn.config import ConfigError
from searchlearn.loop.adversarial import adversarial_rounds
from searchlearn.policy.hf import load_policy
from searchlearn.report.metrics import write_json
from searchlearn.report.plots import reliability
from searchlearn.reward.aggregate import AGGREGATES
from searchlearn.reward.discriminator import DiscriminatorConfig
from searchlearn.reward.learned import LearnedScorer
from searchlearn.reward.labels import consensus
from searchlearn.reward.models import KINDS, RewardTrainConfig
from searchlearn.reward.pipeline import (
    evaluate_rewards,
    fit,
    label_agreement,
    label_solutions,
    load_labels,
    save_labels,
    with_gold_labels,
)
from searchlearn.reward.process import ConfidenceScorer
from searchlearn.reward.selfeval import SelfEvalScorer

LABELS_FILE = "mc_labels.json"


def run_disc_training(args, cfg) -> dict:
    """--kind disc: GAIL/AIRL rounds (`discriminator.adversarial_rounds`); saves D as an ORM-like head in OUT and,
    when the policy was trained against it, the policy in OUT/policy."""

    torch.manual_seed(cfg.seed)
    task = cfg.build_task()
    policy = load_policy(args.model, backend="native")
    dcfg = DiscriminatorConfig(rounds=args.rounds, problems=args.problems, samples=args.samples, d_steps=args.steps,
                               d_batch_size=args.batch_size, d_lr=args.lr, policy_steps=args.policy_steps,
                               policy_lr=args.policy_lr, verifier_weight=args.verifier_weight,
                               max_new_tokens=args.max_new_tokens, seed=cfg.seed)
    model, history = adversarial_rounds(policy, task, dcfg, log=lambda r: progress.say(json.dumps(r)))
    out = Path(args.out)
    name = args.name or "disc"
    meta = {"name": name, "objective": "discriminator (GAIL/AIRL): 1 = expert trace, 0 = policy sample",
            "reward": "log D - log(1 - D) = logit", "aggregate": "last", "policy": str(args.model),
            "train": {"config": asdict(dcfg), "rounds": history}}
    model.save(out, policy.tokenizer, meta)
    if dcfg.policy_steps:
        policy.model.save_pretrained(out / "policy")
        policy.tokenizer.save(out / "policy")
    last = history[-1]
    print(f"discriminator {name} ({dcfg.rounds} rounds) at {out}: loss {last['disc/loss']:.4f} "
          f"accuracy {last['disc/accuracy']:.3f}")
    return meta


def run_training(args, cfg) -> dict:

    if args.kind == "disc":
        return run_disc_training(args, cfg)

    torch.manual_seed(cfg.seed)
    task = cfg.build_task()
    policy = load_policy(args.model, backend="native")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.labels_from:
        labels = load_labels(Path(args.labels_from))
    else:
        problems = task.problems("train", args.problems, seed=cfg.seed + 17)
        progress.say(f"reward: sampling {args.samples} solutions to {len(problems)} problems, "
                     f"{args.rollouts} rollouts per step")
        labels = label_solutions(policy, task, problems, args.samples, args.rollouts, args.max_new_tokens, cfg.seed)
    save_labels(out / LABELS_FILE, labels)
    agreement = label_agreement(labels, task)
    if agreement["soft_auc"] is not None:
        print(f"MC labels vs gold: AUC {agreement['soft_auc']:.3f} (soft), {agreement['hard_auc']:.3f} (hard) over "
              f"{agreement['steps']} steps")
    if args.gold_labels:  # the diagnostic: the architecture's ceiling when the labels are exact
        labels = with_gold_labels(labels, task)
    if args.consensus:  # keep the steps where the MC label and the policy's self-evaluation agree
        labels = consensus(labels, SelfEvalScorer(policy, task)([r.problem for r in labels],
                                                                [r.completion for r in labels]))
        kept = [k for r in labels for k in r.keep]
        agreement["consensus_kept"] = sum(kept) / max(1, len(kept))
        print(f"consensus with self-evaluation: {sum(kept)} of {len(kept)} steps kept")
    backbones = [b for b in args.backbone.split(",") if b]
    try:
        tcfg = RewardTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=cfg.seed,
                                 backbone=backbones[0], beta=args.beta)
        model, stats = fit(policy, labels, args.kind, args.labels, tcfg, args.margin,
                           log=lambda r: progress.say(json.dumps(r)), held_out=args.held_out, backbones=backbones)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    name = args.name or (args.kind if args.kind in ("orm", "implicit") else f"{args.kind}_{args.labels}")
    name += ("_gold" if args.gold_labels else "") + ("_consensus" if args.consensus else "") if not args.name else ""
    meta = {"name": name, "label": "gold" if args.gold_labels else args.labels, "aggregate": args.aggregate,
            "policy": str(args.model), "label_agreement": agreement,
            "examples": stats["examples"], "solutions": len(labels), "train": stats}
    model.save(out, policy.tokenizer, meta)
    held = "" if stats["held_out_loss"] is None else (
        f", held-out loss {stats['held_out_loss']:.4f} at step {stats['best_step']} with backbone {stats['backbone']} "
        f"(of {', '.join(f'{b} {v:.4f}' for b, v in stats['backbones'].items())})")
    print(f"reward model {name} ({stats['examples']} examples) at {out}: final loss {stats['loss']:.4f}{held}")
    return meta


def run_evaluation(args, cfg) -> dict:

    torch.manual_seed(cfg.seed)
    task = cfg.build_task()
    policy = load_policy(args.model, backend="native")
    problems = task.problems("test", args.problems, seed=cfg.seed + 1)
    n = args.samples
    scorers = {"confidence": (ConfidenceScorer(policy, task), "mean"),
               "selfeval": (SelfEvalScorer(policy, task), "mean")}
    for directory in args.rm:
        scorer = LearnedScorer.load(directory, task)
        meta = json.loads((Path(directory) / "reward_config.json").read_text())
        name = meta.get("name") or Path(directory).name
        name = Path(directory).name if name in scorers else name  # two models of one kind: their directories
        scorers[name] = (scorer, args.aggregate or scorer.how)
    result = evaluate_rewards(policy, task, problems, n, scorers, args.max_new_tokens, cfg.seed + 2, args.bins,
                              on_scorer=lambda name: progress.say(f"reward eval: {name}"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "reward_eval.json", result)
    reliability({name: {"ece": result[name]["ece"], "bins": result[name]["calibration"]} for name in scorers},
                out / "calibration.png")
    for name in scorers:
        r = result[name]
        auc_ = "n/a" if r["step_auc"] is None else f"{r['step_auc']:.3f}"
        ece = "n/a" if r["ece"] is None else f"{r['ece']:.3f}"
        within = "n/a" if r["within_problem_auc"] is None else f"{r['within_problem_auc']:.3f}"
        print(f"{name:>12}: step_auc={auc_} first_error_acc={r['first_error_acc']:.3f} "
              f"rerank@{n}={r[f'rerank@{n}']:.3f} within_problem_auc={within} ece={ece}")
    return result


def cmd_reward(args) -> None:
    """Learned reward models: `reward train` (MC labels → ORM/PRM/value/PPM head) and `reward eval` (vs gold)."""
    args.action_fn(args, config(args))


def add_parser(sub):
    """The `reward` subcommand with its `train` and `eval` actions; returns its parser."""
    p = sub.add_parser("reward", help="learned reward models: train (MC labels → ORM/PRM/value/PPM) and eval vs gold")
    actions = p.add_subparsers(dest="action", required=True)
    t = actions.add_parser("train", help="label sampled solutions by MC rollouts, train a reward head, save it")
    add_common(t, "runs/reward")
    t.add_argument("--model", required=True, help="policy checkpoint directory (e.g. runs/demo/policy)")
    t.add_argument("--kind", choices=[*KINDS.names(), "disc"], default="prm",
                   help="disc: a discriminator of expert traces vs policy samples, trained adversarially (GAIL/AIRL)")
    t.add_argument("--labels", choices=("soft", "hard"), default="soft", help="MC label kind (prm/value/ppm)")
    t.add_argument("--labels-from", help="reuse OUT/mc_labels.json of an earlier run instead of rolling out")
    t.add_argument("--problems", type=int, default=64, help="training problems to sample solutions for")
    t.add_argument("--samples", type=int, default=4, help="solutions sampled per problem")
    t.add_argument("--rollouts", type=int, default=8,
                   help="M completions per step prefix (0: outcome labels only, for --kind orm | implicit)")
    t.add_argument("--max-new-tokens", type=int, default=288)
    t.add_argument("--steps", type=int, default=300, help="optimizer steps")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--margin", type=float, default=0.5, help="PPM: least Q difference of a sibling pair")
    t.add_argument("--backbone", default="full", help="what trains under the head: full, frozen (the head only) or "
                   "last:K (the last K blocks); a comma list trains each and keeps the lowest held-out loss")
    t.add_argument("--held-out", type=float, default=0.2, help="share of the labelled problems held out: their "
                   "loss stops training early and picks the backbone (0: none)")
    t.add_argument("--beta", type=float, default=0.05, help="implicit: β of r = β log πφ/πref")
    t.add_argument("--consensus", action="store_true", help="train process heads only on steps where the hard MC "
                   "label and the policy's self-evaluation agree (Zhang et al. 2025)")
    t.add_argument("--gold-labels", action="store_true", help="diagnostic: train on the task's exact step labels of "
                   "the same solutions instead of MC labels (the architecture's ceiling)")
    t.add_argument("--aggregate", choices=list(AGGREGATES), default="min",
                   help="how the saved scorer turns step scores into a solution score")
    t.add_argument("--name", help="the model's name in reward_eval.json (default kind_labels)")
    t.add_argument("--rounds", type=int, default=3, help="disc: adversarial rounds (--problems, --samples, --steps, "
                                                         "--batch-size, --lr are then per round and for D)")
    t.add_argument("--policy-steps", type=int, default=2, help="disc: GRPO steps of the policy against D per round")
    t.add_argument("--policy-lr", type=float, default=1e-5, help="disc: GRPO learning rate")
    t.add_argument("--verifier-weight", type=float, default=0.0,
                   help="disc: w in the policy's reward logit D + w·verifier")
    t.set_defaults(action_fn=run_training)
    e = actions.add_parser("eval", help="step AUC / first-error accuracy vs gold labels → OUT/reward_eval.json")
    add_common(e, "runs/reward_eval")
    e.add_argument("--model", required=True, help="policy checkpoint directory that samples the solutions")
    e.add_argument("--rm", action="append", default=[], help="reward model directory (repeatable)")
    e.add_argument("--problems", type=int, default=50, help="held-out problems")
    e.add_argument("--samples", type=int, default=8, help="solutions per problem (also N of rerank@N)")
    e.add_argument("--max-new-tokens", type=int, default=288)
    e.add_argument("--aggregate", choices=list(AGGREGATES), help="override each model's aggregate")
    e.add_argument("--bins", type=int, default=10, help="equal-width score bins of the calibration table (ECE)")
    e.set_defaults(action_fn=run_evaluation)
    p.set_defaults(fn=cmd_reward)
    return p
