"""Figures of the search-and-learn loop's report: RL reward curves and accuracy against training-time compute."""

from __future__ import annotations

from pathlib import Path

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
