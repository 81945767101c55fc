"""report.html of `searchlearn eval`: the headline table, its figure, and a few example traces.

Best-of-N: greedy pass@1, maj@k and pass@k for each k, generated tokens, and the pass@k / maj@k curve against k.
A tree search (beam, DVTS, MCTS): its strategy, budget and scorer, accuracy, the compute ledger (generated, prefilled
and reward-model tokens per problem) and the search_curves.png point the command wrote. Both list the first traces,
marked correct or wrong by the task's verifier.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Sequence

from searchlearn.report import html, plots
from searchlearn.search.evaluate import headline

EXAMPLES = 4  # traces shown
LEDGER = ("ledger/generated_tokens", "ledger/prefilled_tokens", "ledger/reward_tokens")


def build_eval_report(out: str | Path, result: dict, model: str, task: str, ks: Sequence[int] | None = None) -> Path:
    """OUT/report.html from eval's metrics.json content `result` ({"metrics", "examples", ...}); returns its path.

    `ks` (best-of-N) gives the pass@k / maj@k columns and figure; a tree search's metrics carry `search/strategy`."""
    out = Path(out)
    metrics, examples = result["metrics"], result.get("examples", [])
    problems = result.get("problems", len(examples))
    intro = f"<p>Model <code>{escape(str(model))}</code> on {problems} test problems of the {escape(task)} task.</p>"
    if "search/strategy" in metrics:
        title = f"{metrics['search/strategy']} search"
        settings = {k: metrics[f"search/{k}"] for k in ("strategy", "budget", "scorer")}
        table = html.table({"settings": settings}, list(settings)) + html.table(
            {metrics["search/strategy"]: metrics}, ["search/accuracy", *LEDGER])
        note = "<p>Ledger columns are tokens per problem.</p>"
        figures = [out / "search_curves.png"] if (out / "search_curves.png").exists() else []
        traces = "Example traces (the search's chosen answer)"
    else:
        if ks is None:
            raise ValueError("a best-of-N report needs the ks of its pass@k / maj@k metrics")
        title = f"best-of-{max(ks)}"
        row = {**headline(metrics, ks), "generated tokens": round(metrics["ledger/generated_tokens"]),
               "mean tokens per sample": metrics["mean_tokens"]}
        table = html.table({"model": row}, list(row))
        note = (f"<p>pass@1 is greedy; pass@k (unbiased estimator) and maj@k from {max(ks)} samples per problem; "
                "generated tokens in total, greedy and sampled.</p>")
        figures = [plots.pass_at_k({"": metrics}, list(ks), out / "pass_at_k.png",
                                   title=f"Best-of-k on held-out {task} problems")]
        traces = "Example traces (greedy)"
    sections = [("Held-out accuracy", intro + table + note),
                ("Figures", "".join(html.image(f) for f in figures)),
                (traces, html.examples(examples[:EXAMPLES]))]
    path = out / "report.html"
    path.write_text(html.page(f"searchlearn eval: {title}", sections))
    return path
