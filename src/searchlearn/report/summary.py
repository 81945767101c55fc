"""The answer first: what a run found, in sentences built from its own figures (nothing here is canned prose).

Each function takes the run's numbers and returns plain sentences; `summary_html` puts them at the top of the report.
A change is called a gain or a loss only when it exceeds two standard errors of the difference (binomial, on the
held-out problems); otherwise it is "within noise".
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence


def standard_error(p: float, n: int) -> float:
    """√(p(1 − p)/n): the standard error of an accuracy p measured on n problems."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


def verdict(before: float, after: float, n: int) -> str:
    """"a gain" / "a loss" when |after − before| > 2·SE of the difference (independent binomials), else "within
    noise"."""
    se = math.sqrt(standard_error(before, n) ** 2 + standard_error(after, n) ** 2)
    delta = after - before
    if se > 0 and abs(delta) > 2 * se:
        return "a gain" if delta > 0 else "a loss"
    return "within noise"


def accuracy_sentences(metrics: dict, n_test: int) -> list[str]:
    """Initial vs final greedy pass@1 (± SE), and what each round did to it."""
    init, final = metrics["init"]["pass@1"], metrics["final"]["pass@1"]
    out = [f"Greedy pass@1 on {n_test} held-out problems went from {init:.3f} ± {standard_error(init, n_test):.3f} "
           f"after initialization to {final:.3f} ± {standard_error(final, n_test):.3f} after "
           f"{len(metrics['rounds']) - 1} rounds ({final - init:+.3f}, {verdict(init, final, n_test)}; ± is one "
           "standard error)."]
    rows = metrics["rounds"]
    for before, row in zip(rows, rows[1:]):
        delta = row["pass@1"] - before["pass@1"]
        out.append(f"Round {row['round']} ({row['learner']} on {row['searcher']}): {before['pass@1']:.3f} → "
                   f"{row['pass@1']:.3f} ({delta:+.3f}, {verdict(before['pass@1'], row['pass@1'], n_test)}).")
    ks = [int(k.split("@")[1]) for k in metrics["final"] if k.startswith("pass@") and k != "pass@1"]
    if ks:
        k = max(ks)
        out.append(f"With {k} samples, majority vote reached {metrics['final'][f'maj@{k}']:.3f} and the verifier's "
                   f"ceiling pass@{k} {metrics['final'][f'pass@{k}']:.3f} (after initialization: "
                   f"{metrics['init'][f'maj@{k}']:.3f} and {metrics['init'][f'pass@{k}']:.3f}).")
    return out


def search_sentences(rows: Sequence[dict]) -> list[str]:
    """Per budget, the best test-time strategy that picks an answer without the oracle, with its token cost."""
    if not rows:
        return []
    out = []
    for n in sorted({r["budget"] for r in rows}):
        fair = [r for r in rows if r["budget"] == n and r["strategy"] != "pass@n"]
        if not fair:
            continue
        best = max(fair, key=lambda r: (r["accuracy"], -r["generated_tokens"]))
        majority = next((r for r in fair if r["strategy"] == "bon_majority"), None)
        line = (f"At budget n = {n}, the best strategy was {best['strategy']} with accuracy {best['accuracy']:.3f} "
                f"at {best['generated_tokens']:,.0f} generated tokens per problem")
        if majority is not None and majority is not best:
            line += f" (best-of-{n} majority vote: {majority['accuracy']:.3f} at {majority['generated_tokens']:,.0f})"
        out.append(line + ".")
    scorer, problems = rows[0].get("scorer"), rows[0].get("problems")
    if scorer:
        out.append(f"Searches were guided by the {scorer} scorer on {problems} held-out problems.")
    return out


def reward_sentences(reward: dict) -> list[str]:
    """Which scorer agrees best with the gold step labels, and whether the learned heads beat chance (AUC 0.5)."""
    scored = {name: r for name, r in reward.items() if r.get("step_auc") is not None}
    if not scored:
        return []
    best = max(scored, key=lambda name: scored[name]["step_auc"])
    out = [f"Best step-level agreement with the gold labels: {best} (step AUC {scored[best]['step_auc']:.3f}; "
           "0.5 is chance)."]
    learned = {name: r for name, r in scored.items() if name not in ("confidence", "selfeval")}
    if learned:
        parts = ", ".join(f"{name} {r['step_auc']:.3f}" for name, r in learned.items())
        near = [name for name, r in learned.items() if abs(r["step_auc"] - 0.5) < 0.05]
        out.append(f"Learned reward models: step AUC {parts}" + (f"; {', '.join(near)} within 0.05 of chance." if near
                                                                 else "."))
    rerank = {name: r["rerank"] for name, r in reward.items() if r.get("rerank") is not None}
    if rerank:
        top = max(rerank, key=rerank.get)
        out.append(f"Reranking sampled solutions, {top} picked a correct one most often ({rerank[top]:.3f}).")
    return out


def summary_html(metrics: dict, n_test: int, sweep_rows: Sequence[dict] = (), reward: dict | None = None) -> str:
    sentences = accuracy_sentences(metrics, n_test) + search_sentences(sweep_rows) + reward_sentences(reward or {})
    items = "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
    return f'<div class="summary"><ul>{items}</ul></div>'
