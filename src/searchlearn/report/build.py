"""Assemble a run directory's figures and report.html from its metrics and stage results."""

from __future__ import annotations

from pathlib import Path

from searchlearn.report import html, plots


def build_report(out: str | Path, metrics: dict, stages: dict, ks: list[int], records: list[dict]) -> Path:
    out = Path(out)
    figures = [
        plots.pass_at_k({"init": metrics["init_detail"], "final": metrics["final_detail"]}, ks, out / "pass_at_k.png"),
        plots.loss_curves(records, out / "loss.png"),
        plots.rounds(metrics["rounds"], out / "rounds.png"),
    ]
    if (out / "search_curves.png").exists():
        figures.append(out / "search_curves.png")
    columns = list(metrics["init"].keys())
    summary = (f"<p>{metrics['params'] / 1e6:.2f}M parameters, wall time {metrics['wall_seconds']:.0f} s, "
               f"mean trace length {metrics['mean_trace_tokens']:.0f} tokens.</p>")
    round_rows = {f"round {r['round']}": r for r in metrics["rounds"]}
    round_cols = [c for c in metrics["rounds"][-1] if c != "round"]
    last_eval = [k for k in stages if k.startswith("eval_")][-1]
    sections = [
        ("Held-out accuracy", summary + html.table({"init": metrics["init"], "final": metrics["final"]}, columns)),
        ("Figures", "".join(html.image(f) for f in figures)),
        ("Rounds", html.table(round_rows, round_cols)),
        *_sweep_section(stages.get("sweep")),
        ("Example traces (initialized policy, greedy)", html.examples(stages["eval_init"]["examples"][:4])),
        ("Example traces (final policy, greedy)", html.examples(stages[last_eval]["examples"][:4])),
    ]
    path = out / "report.html"
    path.write_text(html.page("searchlearn report", sections))
    return path


def _sweep_section(sweep: dict | None) -> list[tuple[str, str]]:
    """The search sweep as a table: one row per strategy × budget (accuracy, tokens per problem)."""
    if not sweep:
        return []
    rows = {f"{r['strategy']} n={r['budget']}": r for r in sweep["rows"]}
    note = f"<p>{sweep['rows'][0]['problems']} held-out problems, guided by the {sweep['rows'][0]['scorer']} scorer.</p>"
    return [("Test-time search", note + html.table(rows, ["accuracy", "generated_tokens", "reward_tokens"]))]
