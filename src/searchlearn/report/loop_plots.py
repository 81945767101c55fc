"""Figures of the search-and-learn loop's report: RL reward curves and accuracy against training-time compute."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import NullFormatter

from searchlearn.report.plots import _save, plt


def reward_curves(records: list[dict], phases: list[str], path: str | Path) -> Path:
    """Mean rollout reward (learn/reward) per RL step, one line per online round, steps counted across rounds."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    offset = 0
    for name in phases:
        by_step = {r["step"]: r["learn/reward"] for r in records
                   if r.get("phase") == name and "step" in r and "learn/reward" in r}
        steps = sorted(by_step)
        if steps:
            ax.plot([offset + s for s in steps], [by_step[s] for s in steps], ".-", label=name)
            offset += steps[-1]
    ax.set_xlabel("RL step (cumulative)")
    ax.set_ylabel("mean rollout reward")
    ax.grid(alpha=0.3)
    if offset:
        ax.legend(fontsize=7)
    ax.set_title("Online RL: reward per step")
    return _save(fig, path)


def accuracy_vs_compute(rows: list[dict], path: str | Path) -> Path:
    """Held-out greedy pass@1 after each round against the cumulative generated tokens of training-time search and
    rollouts (round 0, the initial policy, at 0)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    total, xs = 0, []
    for row in rows:
        total += row.get("train_generated_tokens", 0)
        xs.append(total)
    ax.plot(xs, [r["pass@1"] for r in rows], "o-", label="greedy pass@1")
    for x, row in zip(xs, rows):
        ax.annotate(str(row["round"]), (x, row["pass@1"]), fontsize=7, textcoords="offset points", xytext=(3, 3))
    ax.set_xlabel("training-time generated tokens (cumulative)")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Accuracy per round against training compute")
    return _save(fig, path)


def learning_curves(curves: dict[str, list[dict]], path: str | Path, x: str = "samples",
                    title: str = "Held-out greedy pass@1 against train-time compute") -> Path:
    """The train-time scaling curve: held-out greedy pass@1 against cumulative `x` (samples | generated_tokens |
    train_tokens | wall_s; log scale), one line per curve (a run, or a learner), points from loop/curve.py (a mean
    over seeds, `mean_curve`, gets a ± 1 sd band). Each
    curve's start (x = 0, the policy it began from) is drawn as a short dashed level at its left end. Where a curve's
    points carry several learners (a loop's phases), each learner's points get their own marker; where they carry
    "train_pass@1", it is drawn dotted in the same colour."""
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    for label, points in curves.items():
        trained = [p for p in points if p[x] > 0]
        line, = ax.plot([p[x] for p in trained], [p["pass@1"] for p in trained], "-", lw=1.4, label=label)
        if any(p.get("pass@1_sd") for p in trained):  # a mean over seeds (loop/curve.py mean_curve): ± 1 sd
            ax.fill_between([p[x] for p in trained], [p["pass@1"] - p["pass@1_sd"] for p in trained],
                            [p["pass@1"] + p["pass@1_sd"] for p in trained], color=line.get_color(), alpha=0.15, lw=0)
        for i, learner in enumerate(dict.fromkeys(p["learner"] for p in trained)):
            own = [p for p in trained if p["learner"] == learner]
            ax.plot([p[x] for p in own], [p["pass@1"] for p in own], "os^Dv"[i % 5], ms=3.5, color=line.get_color(),
                    label=f"{label}: {learner}" if len({p["learner"] for p in trained}) > 1 else None)
        seen = [p for p in trained if "train_pass@1" in p]
        if seen:  # the same policies on fresh problems of the training split (targets the learners see)
            ax.plot([p[x] for p in seen], [p["train_pass@1"] for p in seen], ":", lw=1.2, color=line.get_color(),
                    label=f"{label}: training-split targets")
        start = [p["pass@1"] for p in points if p[x] == 0]
        if start and trained:
            ax.hlines(start[0], trained[0][x] / 3, trained[0][x], colors=line.get_color(), linestyles="dashed")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels collide
    ax.set_xlabel({"samples": "samples drawn for training", "generated_tokens": "tokens generated for training",
                   "train_tokens": "tokens trained on", "wall_s": "training seconds"}.get(x, x) + " (cumulative)")
    ax.set_ylabel("greedy pass@1 (solid: held-out targets)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)
