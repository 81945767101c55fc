"""A self-contained report.html: figures inlined as base64 PNG with a caption each, tables that fit a laptop screen.

Numbers print to their precision (accuracies and rates to 3 decimals, token counts as integers with thousands
separators); columns carry names a person understands (`LABELS`); a table with more than `MAX_COLUMNS` columns is
split into several, each repeating the row names, so no table runs past the page (the page is 1,100 px wide).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

MAX_COLUMNS = 6  # data columns per table; wider tables are split
PAGE_PX = 1100

STYLE = f"""body{{font-family:system-ui,sans-serif;max-width:{PAGE_PX}px;margin:2em auto;color:#222;line-height:1.45}}
table{{border-collapse:collapse;margin:0.6em 0 1.2em}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
th{{background:#f3f3f3;font-weight:600}}th:first-child,td:first-child,td.text{{text-align:left}}
figure{{margin:1em 0}}img{{max-width:100%}}figcaption{{font-size:13px;color:#555;max-width:760px}}
pre{{background:#f6f6f6;padding:8px;font-size:12px;white-space:pre-wrap;margin:0}}.summary{{background:#f4f8ff;
padding:0.6em 1.2em;border-left:4px solid #36c}}.ok{{color:#070}}.bad{{color:#a00}}.warn{{color:#a60}}
.pair{{display:grid;grid-template-columns:1fr 1fr;gap:12px;margin-bottom:1.2em}}.step{{font-family:monospace;
font-size:12px;white-space:pre-wrap;padding:1px 6px;border-left:4px solid #ccc}}.step.good{{border-color:#2a2}}
.step.dead{{border-color:#d80}}.step.error{{border-color:#c00;background:#fff0f0}}.step.other{{border-color:#999}}"""

LABELS = {
    "pass@1": "greedy pass@1",
    "train_generated_tokens": "train tokens",
    "train_accuracy": "train sample acc.",
    "generated_tokens": "tokens / problem",
    "reward_tokens": "reward tokens / problem",
    "prefilled_tokens": "prefilled / problem",
    "search/train_solve_rate": "solved (any sample)",
    "search/train_accuracy": "sample accuracy",
    "search/trajectories": "trajectories",
    "learn/examples": "SFT examples",
    "learn/pairs": "pairs",
    "ledger/generated_tokens": "generated tokens",
    "ledger/prefilled_tokens": "prefilled tokens",
    "ledger/reward_tokens": "reward tokens",
    "step_auc": "step AUC vs gold",
    "first_error_acc": "first-error acc.",
    "gap_closed": "gap closed",
    "outcome_auc": "outcome AUC",
    "within_problem_auc": "AUC within a problem",
    "ece": "ECE",
}


def label(column: str) -> str:
    return LABELS.get(column, column.replace("_", " "))


def fmt(value, column: str = "") -> str:
    """A cell: counts and token figures as integers with thousands separators, other numbers to 3 decimals."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and ("token" in column or abs(value) >= 1000)):
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _cell(value, column: str) -> str:
    """A <td>: numbers right-aligned (the default), text left-aligned."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"<td>{fmt(value, column)}</td>" if numeric or value is None else f'<td class="text">{fmt(value, column)}</td>'


def image(path: str | Path, caption: str = "") -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    img = f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'
    return f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>" if caption else img


def table(rows: dict[str, dict], columns: list[str], max_columns: int = MAX_COLUMNS) -> str:
    """One table per `max_columns` columns (each repeating the row names): rows × columns of formatted cells."""
    out = []
    for start in range(0, max(1, len(columns)), max_columns):
        part = columns[start : start + max_columns]
        head = "".join(f"<th>{html.escape(label(c))}</th>" for c in ["", *part])
        body = "".join(f"<tr><td>{html.escape(str(name))}</td>{''.join(_cell(row.get(c), c) for c in part)}</tr>"
                       for name, row in rows.items())
        out.append(f"<table><tr>{head}</tr>{body}</table>")
    return "".join(out)


def examples(items: list[dict]) -> str:
    out = []
    for item in items:
        ok = item.get("reward") == 1.0
        verdict = '<span class="ok">correct</span>' if ok else '<span class="bad">wrong</span>'
        out.append(f"<p>{verdict}</p><pre>{html.escape(item['prompt'] + item['completion'])}</pre>")
    return "".join(out)


def page(title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")
