"""Search trees you can look at: a SearchTree drawn as an inline SVG (no script, no CDN), one box per node.

Depth runs left to right; each box shows the step's text, its score (process reward) and, for MCTS, visits and
mean value; terminal nodes have a double border; the chosen path is drawn in blue.
"""

from __future__ import annotations

import html

from searchlearn.types import SearchTree

BOX_W, BOX_H, GAP_X, GAP_Y = 190, 40, 36, 10
MAX_NODES = 400  # a larger tree is drawn to this many nodes (breadth first), and says so


def layout(tree: SearchTree, limit: int = MAX_NODES) -> dict[int, tuple[int, float]]:
    """(depth, row) of each drawn node: leaves take consecutive rows in depth-first order, a parent sits at the mean
    of its children's rows."""
    keep, frontier = {0}, [0]
    while frontier and len(keep) < limit:
        nxt = []
        for i in frontier:
            for c in tree.nodes[i].children:
                if len(keep) < limit:
                    keep.add(c)
                    nxt.append(c)
        frontier = nxt
    pos: dict[int, tuple[int, float]] = {}
    row = 0

    def place(i: int, depth: int) -> float:
        nonlocal row
        kids = [c for c in tree.nodes[i].children if c in keep]
        if not kids:
            pos[i] = (depth, float(row))
            row += 1
        else:
            ys = [place(c, depth + 1) for c in kids]
            pos[i] = (depth, sum(ys) / len(ys))
        return pos[i][1]

    place(0, 0)
    return pos


def _label(tree: SearchTree, i: int, prompt: str) -> tuple[str, str]:
    node = tree.nodes[i]
    if i == 0:
        return (prompt.strip()[:26] or "root"), f"visits {node.visits}" if node.visits else "root"
    text = node.step.text.strip() or "⟨end⟩"
    text = text if len(text) <= 26 else text[:25] + "…"
    facts = []
    if node.step.score is not None:
        facts.append(f"score {node.step.score:.2f}")
    if node.visits:
        facts.append(f"N {node.visits} · Q {node.value:.2f}")
    if node.count > 1:
        facts.append(f"×{node.count}")
    return text, " · ".join(facts)


def tree_svg(tree: SearchTree, chosen: list[int] = (), prompt: str = "") -> str:
    """The tree as an <svg> element; `chosen` (node indices of the answer's path) is highlighted."""
    pos = layout(tree)
    on_path = set(chosen) | {0}
    width = (max(d for d, _ in pos.values()) + 1) * (BOX_W + GAP_X)
    height = (max(r for _, r in pos.values()) + 1) * (BOX_H + GAP_Y)
    x = lambda i: pos[i][0] * (BOX_W + GAP_X) + 4  # noqa: E731
    y = lambda i: pos[i][1] * (BOX_H + GAP_Y) + 4  # noqa: E731
    parts = []
    for i in pos:
        parent = tree.nodes[i].parent
        if parent is not None and parent in pos:
            blue = i in on_path and parent in on_path
            parts.append(f'<line x1="{x(parent) + BOX_W}" y1="{y(parent) + BOX_H / 2}" x2="{x(i)}" '
                         f'y2="{y(i) + BOX_H / 2}" stroke="{"#2962ff" if blue else "#bbb"}" '
                         f'stroke-width="{2.5 if blue else 1}"/>')
    for i in pos:
        text, facts = _label(tree, i, prompt)
        node = tree.nodes[i]
        stroke = "#2962ff" if i in on_path else "#888"
        border = ' stroke-dasharray="4 2"' if node.terminal and i not in on_path else ""
        parts.append(f'<g><title>{html.escape(node.step.text or prompt)}</title>'
                     f'<rect x="{x(i)}" y="{y(i)}" width="{BOX_W}" height="{BOX_H}" rx="5" fill="'
                     f'{"#eef3ff" if i in on_path else "#fff"}" stroke="{stroke}"{border}/>'
                     f'<text x="{x(i) + 6}" y="{y(i) + 16}" font-size="12" font-family="monospace">'
                     f'{html.escape(text)}</text><text x="{x(i) + 6}" y="{y(i) + 32}" font-size="10" fill="#555" '
                     f'font-family="sans-serif">{html.escape(facts)}</text></g>')
    note = "" if len(pos) == len(tree.nodes) else f"<p>{len(pos)} of {len(tree.nodes)} nodes drawn.</p>"
    return (f'<div style="overflow-x:auto;max-width:100%"><svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">{"".join(parts)}'
            f"</svg></div>{note}")
