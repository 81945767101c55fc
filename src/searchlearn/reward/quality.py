"""How good is a process reward? Pure metrics against gold step labels.

  * `auc`: step-level ROC AUC — the probability that a random gold-good step scores above a random gold-bad step
    (ties count ½), the Mann–Whitney U statistic over all steps pooled.
  * `first_error`: the step where a solution first goes wrong (ProcessBench, Zheng et al. 2024): gold = the first
    step labelled bad (−1 if none), predicted = the first step scored below `threshold` (−1 if none). ProcessBench's
    figure is the harmonic mean (F1) of the accuracy on erroneous and on fully correct solutions.
  * `calibration`: is a score of 0.8 right 80% of the time? Equal-width bins of the scores, each bin's mean score
    against its fraction of positive labels (a reliability diagram), and the expected calibration error
    ECE = Σ_b (n_b / N) · |acc_b − conf_b| (Guo et al. 2017).
"""

from __future__ import annotations

from collections.abc import Sequence


def auc(scores: Sequence[float], labels: Sequence[float]) -> float | None:
    """ROC AUC of `scores` for binary `labels` (≥ 0.5 = positive); None when one class is missing."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores but {len(labels)} labels")
    ranked = sorted(zip(scores, labels), key=lambda t: t[0])
    n_pos = sum(1 for _, y in ranked if y >= 0.5)
    n_neg = len(ranked) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum, i = 0.0, 0  # sum of positive ranks, ties sharing their mean rank (1-based)
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2
        rank_sum += mean_rank * sum(1 for _, y in ranked[i:j] if y >= 0.5)
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def first_below(values: Sequence[float], threshold: float = 0.5) -> int:
    """Index of the first value below `threshold`, −1 if none."""
    return next((i for i, v in enumerate(values) if v < threshold), -1)


def first_error(scores: Sequence[Sequence[float]], gold: Sequence[Sequence[float]],
                threshold: float = 0.5) -> dict[str, float | None]:
    """First-error accuracy over solutions: overall, on erroneous ones, on correct ones, and their F1."""
    if len(scores) != len(gold):
        raise ValueError(f"{len(scores)} score lists but {len(gold)} gold lists")
    hits = {"error": [], "correct": []}
    for s, g in zip(scores, gold):
        want = first_below(g, 0.5)
        hits["error" if want >= 0 else "correct"].append(first_below(s, threshold) == want)
    acc = {k: (sum(v) / len(v) if v else None) for k, v in hits.items()}
    both = hits["error"] + hits["correct"]
    f1 = None
    if acc["error"] is not None and acc["correct"] is not None:
        a, b = acc["error"], acc["correct"]
        f1 = 2 * a * b / (a + b) if a + b else 0.0
    return {"first_error_acc": sum(both) / len(both) if both else None, "first_error_acc_erroneous": acc["error"],
            "first_error_acc_correct": acc["correct"], "first_error_f1": f1}


def calibration(scores: Sequence[float], labels: Sequence[float], bins: int = 10) -> dict:
    """Reliability of `scores` as probabilities of binary `labels` (≥ 0.5 = positive).

    Scores must be probabilities: they are clipped to [0, 1], never rescaled (a rank or sigmoid transform would
    change the very numbers whose calibration is in question). Bin b holds the scores in [b/bins, (b+1)/bins), the
    last bin also 1.0. Returns {"ece", "n", "bins": [{"lo", "hi", "count", "mean_score", "frac_positive"}, ...]}
    with every bin listed (an empty one with None means); "ece" is None for no scores.
    """
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores but {len(labels)} labels")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    sums = [[0, 0.0, 0] for _ in range(bins)]  # count, Σ score, positives
    for s, y in zip(scores, labels):
        s = min(1.0, max(0.0, float(s)))
        b = min(int(s * bins), bins - 1)
        sums[b][0] += 1
        sums[b][1] += s
        sums[b][2] += y >= 0.5
    n = len(scores)
    table, ece = [], 0.0
    for b, (count, total, positives) in enumerate(sums):
        conf = total / count if count else None
        acc = positives / count if count else None
        if count:
            ece += count / n * abs(acc - conf)
        table.append({"lo": b / bins, "hi": (b + 1) / bins, "count": count, "mean_score": conf, "frac_positive": acc})
    return {"ece": ece if n else None, "n": n, "bins": table}
