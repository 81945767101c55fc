"""The model's own words: greedy traces of the same held-out problems before and after learning, side by side, each
step marked by the task's gold labels (good, dead end, arithmetic error, wrong answer)."""

from __future__ import annotations

import html
from collections.abc import Sequence

MARK_CLASS = {"good": "good", "dead end": "dead", "arithmetic error": "error", "wrong answer": "error"}


def split_steps(text: str, delimiter: str = "\n") -> list[str]:
    """`text` cut after each delimiter (the last piece may lack it)."""
    parts = text.split(delimiter)
    return [p + delimiter for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def trace_html(example: dict) -> str:
    """One greedy trace: the prompt, then each step in a row coloured by its mark (a tooltip names it), and the
    verifier's verdict."""
    marked = example.get("steps") or [(step, "") for step in split_steps(example["completion"])]  # [(step, mark)]
    rows = "".join(f'<div class="step {MARK_CLASS.get(m, "other")}" title="{html.escape(m or "unmarked")}">'
                   f'{html.escape(s.rstrip(chr(10)) or " ")}'
                   f'{f" <small>· {html.escape(m)}</small>" if m and m != "good" else ""}</div>'
                   for s, m in marked)
    ok = example.get("reward") == 1.0
    verdict = '<span class="ok">correct</span>' if ok else '<span class="bad">wrong</span>'
    return f"<pre>{html.escape(example['prompt'].rstrip())}</pre>{rows}<p>{verdict}</p>"


def side_by_side(before: Sequence[dict], after: Sequence[dict], titles: tuple[str, str] = ("initialized policy",
                                                                                          "final policy")) -> str:
    """Problem by problem, the two policies' traces in two columns (the same problems, in the same order)."""
    legend = ("<p>Each step is marked by the gold labels: <span class='ok'>green</span> good (the target is still "
              "reachable, or a correct check/answer), <span class='warn'>orange</span> a dead end, "
              "<span class='bad'>red</span> an arithmetic error or a wrong answer.</p>")
    head = f"<div class='pair'><b>{html.escape(titles[0])}</b><b>{html.escape(titles[1])}</b></div>"
    pairs = "".join(f"<div class='pair'><div>{trace_html(a)}</div><div>{trace_html(b)}</div></div>"
                    for a, b in zip(before, after))
    return legend + head + pairs
