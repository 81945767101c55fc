"""Learning curves: held-out greedy pass@1 against train-time compute, the roadmap's train-time scaling curve.

While a learner trains, `CurveProbe` watches the records it logs. Every `every` learner steps (or at every·2^k steps,
`spacing: log`), and at its last step,
it evaluates greedy pass@1 on a fixed held-out set (the first `problems` of the loop's held-out problems) and logs a
point, `{"phase": "curve", "round", "step", "learner", "samples", "generated_tokens", "train_tokens", "wall_s",
"pass@1"}`, whose compute is the run's total so far:

    samples            completions drawn for training (search trajectories, RL rollouts; DAPO's dropped draws too)
    generated_tokens   tokens those completions generated
    train_tokens       loss tokens of every optimizer pass (μ epochs count μ times)
    wall_s             seconds of training-time search and learner steps (evaluations not counted)

The policy initialization's compute is not counted: its policy is the curve's first point (round 0, step 0).
Totals are sums of the `count/` counters of the logged records (`totals`), each (phase, step) counted once, so a run
killed and resumed (`--resume`) rebuilds the same curve from metrics.jsonl: a redone step replaces the record it redoes
(`curve_points`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from searchlearn.config import ConfigError
from searchlearn.distributed.shard import learner_ranks
from searchlearn.search.evaluate import greedy_pass_at_1
from searchlearn.types import Problem

COUNTS = ("samples", "generated_tokens", "train_tokens", "seconds")  # the `count/` counters records carry
PHASE = "curve"  # the phase of a curve point's record
START = ("init",)  # phases whose compute is the curve's starting point, not on it: the policy initialization


@dataclass
class CurveConfig:
    every: int = 0  # learner steps between points (0 = a point at the end of each round only)
    problems: int = 200  # the fixed held-out set: the first `problems` held-out problems (at most all of them)
    train_problems: int = 0  # also greedy pass@1 on this many unseen problems of the training split ("train_pass@1")
    spacing: str = "linear"  # linear: a point every `every` steps; log: at every·2^k steps (every, 2·every, 4·every,
    #                          …), evenly spaced on the curve's log axis, so a long run costs few evaluations

    def __post_init__(self) -> None:
        if self.every < 0 or self.problems < 1 or self.train_problems < 0:
            raise ConfigError("curve.every and curve.train_problems must be >= 0, curve.problems >= 1")
        if self.spacing not in ("linear", "log"):
            raise ConfigError(f"curve.spacing must be linear or log, got {self.spacing!r}")

    def due(self, step: int) -> bool:
        """Whether learner step `step` (1-based) gets a point (besides the learner's last step, which always does)."""
        if not self.every or step % self.every:
            return False
        k = step // self.every
        return self.spacing == "linear" or k & (k - 1) == 0


def _latest(records: Sequence[dict]) -> dict[tuple, dict]:
    """Each (phase, step)'s last record: a step redone after a resume replaces the one it redoes."""
    return {(r.get("phase"), r.get("step")): r for r in records}


def totals(records: Sequence[dict], phase: str | None = None, step: int | None = None) -> dict[str, float]:
    """The run's compute so far: each `count/` counter summed over the records, one per (phase, step); records of
    `phase` after `step` (left by a killed run, not yet redone) are left out."""
    out = dict.fromkeys(COUNTS, 0.0)
    for (p, s), record in _latest(records).items():
        if p in START or p == phase and s is not None and step is not None and s > step:
            continue
        for key in COUNTS:
            out[key] += float(record.get(f"count/{key}", 0.0))
    return out


def curve_points(records: Sequence[dict]) -> list[dict]:
    """The curve in metrics.jsonl, in order, one point per (round, step)."""
    points = {(r["round"], r["step"]): {k: v for k, v in r.items() if k not in ("phase", "time")}
              for r in records if r.get("phase") == PHASE}
    return [points[key] for key in sorted(points)]


def mean_curve(runs: Sequence[Sequence[dict]]) -> list[dict]:
    """The point-by-point mean of several runs' curves (seeds of one recipe): point i averages every run's i-th point,
    accuracies and compute alike (runs of one recipe draw the same samples but not the same tokens), over the points
    all runs reached. Each point also carries "pass@1_sd", the sample standard deviation over runs (0 for one run)."""
    if not runs:
        raise ValueError("mean_curve needs at least one run")
    means = []
    for points in zip(*runs):
        mean = dict(points[0])
        for key in ("pass@1", "train_pass@1", "samples", "generated_tokens", "train_tokens", "wall_s"):
            if all(key in p for p in points):
                mean[key] = statistics.fmean(p[key] for p in points)
        mean["pass@1_sd"] = statistics.stdev(p["pass@1"] for p in points) if len(points) > 1 else 0.0
        means.append(mean)
    return means


def point(records: Sequence[dict], round_: int, step: int, learner: str, accuracy: dict[str, float],
          phase: str | None = None) -> dict:
    """A curve record: `accuracy` ({"pass@1": …} and maybe {"train_pass@1": …}) at the compute of `records` so far
    (see `totals`)."""
    spent = totals(records, phase, step)
    return {"phase": PHASE, "round": round_, "step": step, "learner": learner, "samples": int(spent["samples"]),
            "generated_tokens": int(spent["generated_tokens"]), "train_tokens": int(spent["train_tokens"]),
            "wall_s": round(spent["seconds"], 2), **accuracy}


class CurveProbe:
    """Greedy pass@1 of `policy` on `problems`, logged as curve points while learners train (see the module).

    `watch(log, round, learner, steps, phase)` wraps a learner's `log`: each record goes through, and when its step
    is a multiple of `every` (or the learner's last) a point follows (the loop has its learners log at least every
    `every` steps). Under data-parallel learners the records come
    back after training, with the final weights, so only the last step gets a point."""

    def __init__(self, cfg: CurveConfig, policy, task, problems: Sequence[Problem], max_new_tokens: int, seed: int,
                 log: Callable[[dict], None], records: Callable[[], list[dict]],
                 train_problems: Sequence[Problem] = ()):
        self.cfg, self.policy, self.task, self.problems = cfg, policy, task, list(problems)[: cfg.problems]
        self.train_problems = list(train_problems)
        self.max_new_tokens, self.seed, self.log, self.records = max_new_tokens, seed, log, records

    def measure(self) -> dict[str, float]:
        """Greedy pass@1 now (and on the training split's unseen problems, when there are some), leaving the model's
        mode and the global RNG as they were (exact resume)."""
        model, rng = self.policy.model, torch.get_rng_state()
        was_training = model.training
        model.eval()
        sets = {"pass@1": self.problems, "train_pass@1": self.train_problems}
        try:
            return {key: greedy_pass_at_1(self.policy, self.task, problems, self.max_new_tokens, self.seed)["pass@1"]
                    for key, problems in sets.items() if problems}
        finally:
            model.train(was_training)
            torch.set_rng_state(rng)

    def mark(self, round_: int, step: int, learner: str, phase: str | None = None) -> dict:
        """Measure now and log the point."""
        record = point(self.records(), round_, step, learner, self.measure(), phase)
        self.log(record)
        return record

    def watch(self, log: Callable[[dict], None], round_: int, learner: str, steps: int, phase: str
              ) -> Callable[[dict], None]:
        probe = learner_ranks() == 1  # data-parallel records come back after training: the last step only

        def logged(record: dict) -> None:
            log(record)
            step = record.get("step")
            if record.get("phase") == phase and step is not None and (step == steps or probe and self.cfg.due(step)):
                self.mark(round_, step, learner, phase)

        return logged
