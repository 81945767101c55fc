"""Reward models end to end on Countdown: label sampled solutions, fit a head, measure it against gold.

`label_solutions`: n sampled solutions per training problem, every step labelled by M Monte-Carlo rollouts
(Math-Shepherd, Wang et al. 2024; `labels.mc_labels`). `fit`: an ORM / PRM / value head or a PPM on those labels
(`models.py`). `evaluate_rewards`: sampled solutions to held-out problems scored by each scorer, with
  * step AUC against Countdown's exact process labels and first-error accuracy (ProcessBench, Zheng et al. 2024);
  * rerank@n: accuracy of the best of n samples by the scorer's aggregated solution score, against maj@n and pass@n
    (the gap a verifier can close, Cobbe et al. 2021);
  * outcome AUC: the aggregated solution score against the verifier's correct/incorrect;
  * calibration of the step scores against gold (ECE and reliability bins, `quality.calibration`).
`searchlearn reward train|eval` (command.py) and the demo's reward stage both use these.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from searchlearn.distributed.shard import map_problems
from searchlearn.reward.aggregate import aggregate, majority_vote
from searchlearn.reward.labels import StepLabels, mc_labels
from searchlearn.reward.models import (
    KINDS,
    RewardModel,
    RewardTrainConfig,
    train_reward,
)
from searchlearn.reward.process import GoldScorer
from searchlearn.reward.quality import auc, calibration, first_error
from searchlearn.types import Problem, SamplingParams


def sample_solutions(policy, problems: list[Problem], n: int, max_new_tokens: int, seed: int,
                     temperature: float = 1.0) -> tuple[list[Problem], list[str]]:
    """n sampled completions per problem, flattened problem-major: (problem of each, text of each)."""
    params = SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    completions = policy.generate([p.prompt for p in problems], params)
    return [problems[c.prompt_index] for c in completions], [c.text for c in completions]


def label_solutions(policy, task, problems: list[Problem], samples: int, rollouts: int, max_new_tokens: int,
                    seed: int) -> list[StepLabels]:
    """`samples` solutions per problem, each step labelled by `rollouts` completions (hard and soft labels), flat
    and problem-major; sharded over the workers when a pool is active (`--workers N`). `rollouts` = 0 labels the
    outcome alone (the verifier, no step labels): the data of outcome-trained heads (ORM, implicit PRM), a sample
    per solution instead of a sample per step and rollout."""
    if rollouts < 0:
        raise ValueError(f"rollouts must be >= 0, got {rollouts}")
    per_problem = map_problems(_label_problems, problems, policy, task, samples, rollouts, max_new_tokens, seed)
    return [labels for group in per_problem for labels in group]


def _label_problems(problems: list[Problem], policy, task, samples: int, rollouts: int, max_new_tokens: int,
                    seed: int) -> list[list[StepLabels]]:
    """`label_solutions` on these problems, one list of `samples` labelled solutions per problem."""
    problem_of, texts = sample_solutions(policy, problems, samples, max_new_tokens, seed)
    if rollouts:
        labels = mc_labels(policy, task, problem_of, texts, m=rollouts, max_new_tokens=max_new_tokens, seed=seed + 1)
    else:
        labels = [StepLabels(p, task.steps(t), outcome=task.verify(p, t).score) for p, t in zip(problem_of, texts)]
    return [labels[i * samples : (i + 1) * samples] for i in range(len(problems))]


def label_agreement(labels: Sequence[StepLabels], task) -> dict:
    """How well the Monte-Carlo labels themselves agree with the task's gold step labels: AUC of the soft and the hard
    labels against gold over every labelled step (None where the task has no gold labels, one class is missing, or
    the solutions carry outcome labels only: labelled with 0 rollouts)."""
    labels = [r for r in labels if r.hard]
    if not hasattr(task, "gold_step_values") or not labels:
        return {"soft_auc": None, "hard_auc": None, "steps": sum(len(r.steps) for r in labels)}
    gold = [g for r in labels for g in task.gold_step_values(r.problem, r.completion)]
    soft = [v for r in labels for v in r.soft]
    hard = [v for r in labels for v in r.hard]
    if not (len(gold) == len(soft) == len(hard)):
        raise ValueError(f"{len(gold)} gold labels for {len(soft)} MC labels: the step splits disagree")
    return {"soft_auc": auc(soft, gold), "hard_auc": auc(hard, gold), "steps": len(gold)}


def save_labels(path: Path, labels: list[StepLabels]) -> None:
    rows = [{"problem": {"id": r.problem.id, "prompt": r.problem.prompt, "data": r.problem.data},
             "steps": r.steps, "hard": r.hard, "soft": r.soft, "outcome": r.outcome} for r in labels]
    Path(path).write_text(json.dumps(rows))


def load_labels(path: Path) -> list[StepLabels]:
    rows = json.loads(Path(path).read_text())
    return [StepLabels(Problem(**r["problem"]), r["steps"], r["hard"], r["soft"], r["outcome"]) for r in rows]


def split_by_problem(labels: Sequence[StepLabels], fraction: float, seed: int = 0
                     ) -> tuple[list[StepLabels], list[StepLabels]]:
    """(train, held out): about `fraction` of the problems (all their solutions) held out, chosen by a seeded hash of
    the problem id, so a held-out problem's solutions never teach the head."""
    if not 0 <= fraction < 1:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    ids = sorted({r.problem.id for r in labels})
    random.Random(seed).shuffle(ids)
    held = set(ids[: round(fraction * len(ids))])
    return [r for r in labels if r.problem.id not in held], [r for r in labels if r.problem.id in held]


def with_gold_labels(labels: Sequence[StepLabels], task) -> list[StepLabels]:
    """The same solutions labelled by the task's exact process labels instead of MC (hard = soft = gold): a head
    trained on these shows what the architecture can reach when the labels are right (a diagnostic, Countdown)."""
    out = []
    for r in labels:
        gold = [float(g) for g in task.gold_step_values(r.problem, r.completion)]
        out.append(dataclasses.replace(r, hard=list(gold), soft=list(gold)))
    return out


def fit(policy, labels: Sequence[StepLabels], kind: str, label: str, cfg: RewardTrainConfig, margin: float = 0.5,
        log: Callable[[dict], None] | None = None, held_out: float = 0.0,
        backbones: Sequence[str] = ()) -> tuple[RewardModel, dict]:
    """A `kind` head (orm | prm | value | ppm) on a copy of the policy's backbone, trained on `label` (soft | hard)
    MC labels; PPM pairs are sibling steps whose Q differs by at least `margin` (rStar-Math).

    `held_out` > 0 keeps that share of the problems out of training: their loss stops training early (the weights of
    its minimum are kept), and with several `backbones` (full | frozen | last:K) each is trained and the one with the
    lowest held-out loss is returned. Returns (model, stats): stats["examples"] (pairs for PPM), "held_out_examples",
    "backbone" (the one kept) and "backbones" (each one's held-out loss)."""
    if not KINDS[kind].outcome_only and any(r.steps and not r.hard for r in labels):
        raise ValueError(f"a {kind} head needs step labels; some solutions have only their outcome (labelled with "
                         "0 rollouts): label them with rollouts >= 1, or train an outcome head (orm, implicit)")
    train, val = split_by_problem(labels, held_out, cfg.seed) if held_out else (list(labels), [])
    limit = policy.model.config.max_position_embeddings
    data = KINDS[kind].data(policy.tokenizer, train, label, margin, limit)
    val_data = KINDS[kind].data(policy.tokenizer, val, label, margin, limit) if val else []
    if not data:
        raise ValueError(f"no {kind} training examples from {len(train)} labelled solutions (PPM: no sibling pair "
                         f"with a Q margin ≥ {margin}); sample more problems or lower the margin")
    choices = list(backbones) or [cfg.backbone]
    if len(choices) > 1 and not val_data:
        raise ValueError(f"choosing among backbones {choices} needs held-out examples: set a held-out share > 0 "
                         "and label enough problems")
    best, losses = None, {}
    for backbone in choices:
        model = RewardModel(policy.model, kind, beta=cfg.beta)
        stats = train_reward(model, data, dataclasses.replace(cfg, backbone=backbone), policy.tokenizer.pad_id,
                             log=log or (lambda record: None), name=f"reward-{kind}-{backbone}", held_out=val_data)
        losses[backbone] = stats["held_out_loss"]
        if best is None or (val_data and stats["held_out_loss"] < best[1]["held_out_loss"]):
            best = (model, {**stats, "backbone": backbone})
    model, stats = best
    return model, {**stats, "examples": len(data), "held_out_examples": len(val_data), "backbones": losses}


def evaluate_scorer(scorer, task, problem_of: list[Problem], texts: list[str], gold: list[list[float]],
                    n: int, how: str = "last", bins: int = 10) -> dict:
    """Step AUC, first-error accuracy, rerank@n, outcome AUC and calibration of one process scorer on sampled
    solutions (n consecutive samples per problem)."""
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
    solution = [aggregate(s, how) if s else -1e9 for s in scores]  # no steps = the lowest score
    correct = [float(task.verify(p, t).correct) for p, t in zip(problem_of, texts)]
    out["outcome_auc"] = auc(solution, correct)
    out["within_problem_auc"] = within_problem_auc(solution, correct, n)
    cal = calibration(flat_s, flat_g, bins)
    out["ece"], out["calibration"] = cal["ece"], cal["bins"]
    return out


def within_problem_auc(scores: Sequence[float], correct: Sequence[float], n: int) -> float | None:
    """Outcome AUC among the n samples of each problem, averaged over problems with both right and wrong samples: what
    reranking needs. A pooled AUC also rewards telling easy problems from hard ones, which picks nothing."""
    aucs = [auc(scores[s : s + n], correct[s : s + n]) for s in range(0, len(scores), n)]
    aucs = [a for a in aucs if a is not None]
    return sum(aucs) / len(aucs) if aucs else None


def evaluate_rewards(policy, task, problems: list[Problem], n: int, scorers: dict[str, tuple[Callable, str]],
                     max_new_tokens: int, seed: int, bins: int = 10,
                     on_scorer: Callable[[str], None] | None = None) -> dict:
    """reward_eval.json's content: "_data" (problems, samples, steps, maj@n, pass@n, sample accuracy) and one entry
    per scorer name (`scorers`: name -> (process scorer, aggregate)) from `evaluate_scorer`."""
    problem_of, texts = sample_solutions(policy, problems, n, max_new_tokens, seed)
    gold = GoldScorer(task)(problem_of, texts)
    correct = [task.verify(p, t).correct for p, t in zip(problem_of, texts)]
    maj = []
    for start in range(0, len(texts), n):
        keys = [task.answer_key(p, t) for p, t in zip(problem_of[start : start + n], texts[start : start + n])]
        i = majority_vote(keys)
        maj.append(i is not None and correct[start + i])
    steps = sum(map(len, gold))
    result: dict = {"_data": {"problems": len(problems), "samples": n, "steps": steps,
                              "good_step_share": sum(v for g in gold for v in g) / max(1, steps),
                              f"pass@{n}": sum(any(correct[s : s + n]) for s in range(0, len(texts), n))
                              / len(problems),
                              f"maj@{n}": sum(maj) / len(maj), "sample_accuracy": sum(correct) / len(correct)}}
    for name, (scorer, how) in scorers.items():
        if on_scorer:
            on_scorer(name)
        result[name] = evaluate_scorer(scorer, task, problem_of, texts, gold, n, how, bins)
        result[name]["gap_closed"] = gap_closed(result, name)
    return result


def gap_closed(result: dict, name: str) -> float | None:
    """(rerank@n − maj@n) / (pass@n − maj@n): the share of the voting-to-oracle gap the scorer closes (None when
    there is no gap)."""
    data = result["_data"]
    n = data["samples"]
    gap = data[f"pass@{n}"] - data[f"maj@{n}"]
    return None if gap <= 0 else (result[name][f"rerank@{n}"] - data[f"maj@{n}"]) / gap
