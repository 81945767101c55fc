"""A self-contained report.html: figures inlined as base64 PNG, metrics tables, example traces."""

from __future__ import annotations

import base64
import html
from pathlib import Path

STYLE = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}img{max-width:100%}pre{background:#f6f6f6;padding:8px;font-size:12px}
.ok{color:#070}.bad{color:#a00}"""


def image(path: str | Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'


def table(rows: dict[str, dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["", *columns])
    body = ""
    for name, row in rows.items():
        cells = "".join(f"<td>{_fmt(row.get(c))}</td>" for c in columns)
        body += f"<tr><td>{html.escape(str(name))}</td>{cells}</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


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


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value)) if value is not None else ""
