"""The test-time scaling plot: held-out accuracy against generated tokens per problem (log x), one line per
strategy, with the pass@N ceiling of best-of-N dashed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

from searchlearn.report.metrics import write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(rows: Sequence[dict], path: str | Path, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    names = list(dict.fromkeys(r["strategy"] for r in rows))
    for i, name in enumerate(names):
        points = sorted((r["generated_tokens"], r["accuracy"], r["budget"]) for r in rows if r["strategy"] == name)
        xs, ys = [max(x, 1e-9) for x, _, _ in points], [y for _, y, _ in points]
        ceiling = name == "pass@n"
        ax.plot(xs, ys, "--" if ceiling else "o-", color="black" if ceiling else f"C{i}", lw=1.0 if ceiling else 1.6,
                label="pass@N (ceiling)" if ceiling else name)
        if not ceiling:
            for x, y, n in points:
                ax.annotate(str(n), (max(x, 1e-9), y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("generated tokens per problem (ledger)")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title(title or "Test-time compute: accuracy vs generated tokens")
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_curves(rows: Sequence[dict], out: str | Path, title: str = "") -> tuple[Path, Path]:
    """DIR/search_curves.json (the rows) and DIR/search_curves.png (accuracy vs generated tokens, log x)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "search_curves.json", list(rows))
    return out / "search_curves.json", plot_curves(rows, out / "search_curves.png", title)
