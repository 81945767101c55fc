"""Matplotlib figures for the report (Agg backend: no screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def pass_at_k(evals: dict[str, dict], ks: list[int], path: str | Path,
              title: str = "Best-of-k on held-out Countdown targets") -> Path:
    """pass@k and maj@k against k (log x), one line pair per evaluated policy (e.g. init, final; a name "" labels the
    lines plainly)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, (name, metrics) in enumerate(evals.items()):
        color = f"C{i}"
        ax.plot(ks, [metrics[f"sample_pass@{k}"] for k in ks], "o-", color=color, label=f"{name} pass@k".strip())
        ax.plot(ks, [metrics[f"maj@{k}"] for k in ks], "s--", color=color, label=f"{name} maj@k".strip())
        ax.axhline(metrics["pass@1"], color=color, lw=0.8, ls=":", label=f"{name} greedy".strip())
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("samples k")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title)
    return _save(fig, path)


def loss_curves(records: list[dict], path: str | Path) -> Path:
    """learn/loss against step, one line per training phase (init SFT, each expert-iteration round)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    phases: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        if "learn/loss" in r:
            phases.setdefault(r["phase"], []).append((r["step"], r["learn/loss"]))
    offset = 0
    for name, points in phases.items():
        steps = [offset + s for s, _ in points]
        ax.plot(steps, [v for _, v in points], label=name)
        offset = steps[-1] if steps else offset
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step (cumulative)")
    ax.set_ylabel("completion NLL per token")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Training loss")
    return _save(fig, path)


def rounds(rows: list[dict], path: str | Path) -> Path:
    """Held-out accuracy per expert-iteration round (round 0 = the initialized policy)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    xs = [r["round"] for r in rows]
    largest = max((int(k.split("@")[1]) for k in rows[0] if k.startswith("pass@")), default=1)
    lines = {f"pass@{largest}": "^:", f"maj@{largest}": "s--", "pass@1": "o-"}  # pass@1 last: the greedy one wins
    for key, style in reversed(lines.items()):
        if all(key in r for r in rows):
            ax.plot(xs, [r[key] for r in rows], style, label="greedy pass@1" if key == "pass@1" else key)
    ax.set_xticks(xs)
    ax.set_xlabel("round")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Search → learn rounds")
    return _save(fig, path)


def reliability(curves: dict[str, dict], path: str | Path) -> Path:
    """Reliability diagram: per scorer, each bin's fraction of gold-good steps against its mean score (marker area ∝
    the bin's count), with the diagonal of perfect calibration; `curves` maps a name to `quality.calibration(...)`."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls=":", label="perfectly calibrated")
    for i, (name, cal) in enumerate(curves.items()):
        full = [b for b in cal["bins"] if b["count"]]
        if not full:
            continue
        n = max(1, sum(b["count"] for b in full))
        ece = "n/a" if cal.get("ece") is None else f"{cal['ece']:.3f}"
        xs, ys = [b["mean_score"] for b in full], [b["frac_positive"] for b in full]
        ax.plot(xs, ys, "-", color=f"C{i}", lw=1, label=f"{name} (ECE {ece})")
        ax.scatter(xs, ys, s=[10 + 200 * b["count"] / n for b in full], color=f"C{i}", alpha=0.7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean score in bin")
    ax.set_ylabel("fraction of steps gold-good")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Reliability of step scores")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
