"""Learning curves of finished (or stopped) loop runs on one figure, read from each run's metrics.jsonl.

Each run directory's curve points (loop/curve.py; a run stopped mid-way keeps the points it logged) become one line,
held-out greedy pass@1 against the chosen compute axis (log x). LABEL=DIR1,DIR2,... (seeds of one recipe) draws
their point-by-point mean (`mean_curve`), with a ± 1 sd band:

    python benchmarks/plot_curves.py GRPO=runs/base/grpo_seed0 tree_grpo=runs/base/tree_grpo_seed0 \\
        --x generated_tokens --out docs/figures/credit_1k.png
    python benchmarks/plot_curves.py GRPO=runs/a/grpo_seed0,runs/b/grpo_seed1 --x generated_tokens --out f.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from searchlearn.loop.curve import curve_points, mean_curve
from searchlearn.report.loop_plots import learning_curves


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="LABEL=DIR", help="a label and a loop run directory")
    p.add_argument("--x", default="samples", choices=("samples", "generated_tokens", "train_tokens", "wall_s"))
    p.add_argument("--title", default="Held-out greedy pass@1 against train-time compute")
    p.add_argument("--out", type=Path, required=True, help="the figure (.png)")
    args = p.parse_args()
    curves = {}
    for spec in args.runs:
        label, _, dirs = spec.partition("=")
        runs = [curve_points([json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()])
                for run in dirs.split(",")]
        curves[label] = mean_curve(runs)  # one run: that run (sd 0, drawn without a band)
        print(label + ": " + ", ".join(f"{q[args.x]:,.0f} → {q['pass@1']:.3f}" +
                                       (f" ± {q['pass@1_sd']:.3f}" if len(runs) > 1 else "") for q in curves[label]))
    print(f"wrote {learning_curves(curves, args.out, x=args.x, title=args.title)}")


if __name__ == "__main__":
    main()
