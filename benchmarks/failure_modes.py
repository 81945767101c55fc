"""Where a Countdown policy fails: greedy pass@1 on training-split and held-out targets, and the first wrong try line.

For each checkpoint: greedy traces of `--problems` fresh training-split problems (targets the learners see) and as many
held-out ones (targets never seen in training), then for every try line of the traces whether its arithmetic and
verdict are right, and for every failed trace the first thing that went wrong:

    need-check traces ("try x: need N | a b -> M verdict"):
        need     a need slot (T−x, T+x, x−T, T/x, x/T, T·x) is wrong: arithmetic with the target as an operand
        make     a make slot (a+b, a−b, a·b, a/b) is wrong
        verdict  the verdict disagrees with the trace's own lists (false yes: a value called present that is not)
    forward-check traces ("try x: a b -> M | c F | …"):
        make / final (c∘x) / verdict (a value equal to the target missed, or a yes without one)

    python benchmarks/failure_modes.py runs/demo/ckpt/init runs/demo/policy --problems 500
"""

from __future__ import annotations

import argparse
import collections

from searchlearn.loop.rounds import load_local
from searchlearn.policy.prompts import format_problems
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.best_of_n import sample
from searchlearn.tasks.countdown import makes, needs
from searchlearn.tasks.countdown_labels import _FORWARD_TRY, _TRY_LINE, _forward_groups, _slot_values
from searchlearn.tasks.registry import DEFAULT_TASK
from searchlearn.types import SamplingParams

SLOTS = ("T-x", "T+x", "x-T", "T/x", "x/T", "T*x")


def need_line(m, target: int, counts: collections.Counter) -> str | None:
    """Count a need-check try line's errors; return the kind of its first one (None: right)."""
    x, rest = int(m[1]), [int(v) for v in m[3].split()]
    need, written = _slot_values(m[2]), _slot_values(m[4])
    wrong_need = [SLOTS[i] for i, (a, b) in enumerate(zip(need, needs(x, target))) if a != b]
    make_ok = written == makes(rest)[: len(written)]
    hit = any(v is not None and v in {n for n in need if n is not None} for v in written)
    false_yes, false_no = m[5] == "yes" and not hit, m[5] == "no" and hit
    counts.update({"lines": 1, "need wrong": bool(wrong_need), "make wrong": not make_ok, "false yes": false_yes,
                   "false no": false_no, **{f"slot {s} wrong": 1 for s in wrong_need}})
    return "need" if wrong_need else "make" if not make_ok else "verdict" if false_yes or false_no else None


def forward_line(m, target: int, counts: collections.Counter) -> str | None:
    """Count a forward-check try line's errors; return the kind of its first one (None: right)."""
    x, rest = int(m[1]), [int(v) for v in m[2].split()]
    groups = _forward_groups(m)
    make_ok = _slot_values(m[3]) == makes(rest)
    finals_ok = all(written == makes([c, x])[: len(written)] for c, written in groups)
    hit = any(v == target for _, written in groups for v in written)
    false_yes, false_no = m[5] == "yes" and not hit, m[5] == "no" and hit
    counts.update({"lines": 1, "make wrong": not make_ok, "final wrong": not finals_ok, "false yes": false_yes,
                   "false no": false_no})
    return "make" if not make_ok else "final" if not finals_ok else "verdict" if false_yes or false_no else None


def analyse(policy, task, split: str, n: int, max_new_tokens: int) -> dict:
    problems = format_problems(task.problems(split, n, seed=99 if split == "train" else 1), policy.tokenizer,
                               task.name, "task")
    results = sample(problems, policy, task, SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens),
                     VerifierReward(task))
    first, counts, tokens = collections.Counter(), collections.Counter(), 0
    for problem, result in zip(problems, results):
        trace = result.trajectories[0]
        tokens += len(trace.token_ids)
        kind = None
        for line in task.steps(trace.completion):
            if m := _TRY_LINE.fullmatch(line.strip()):
                kind = kind or need_line(m, problem.data["target"], counts)
            elif m := _FORWARD_TRY.fullmatch(line.strip()):
                kind = kind or forward_line(m, problem.data["target"], counts)
        first["solved" if trace.reward >= 1 else kind or "other"] += 1
    lines = max(1, counts.pop("lines", 0))
    return {"pass@1": first["solved"] / n, "first error of failed traces": {k: v for k, v in first.items() if k != "solved"},
            "per try line": {k: round(v / lines, 3) for k, v in sorted(counts.items())}, "try lines": lines,
            "mean tokens": round(tokens / n, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="checkpoint directories")
    p.add_argument("--problems", type=int, default=500, help="problems per split (standard error ≈ 0.5/√n)")
    p.add_argument("--max-new-tokens", type=int, default=360)
    args = p.parse_args()
    task = DEFAULT_TASK.build()
    for path in args.models:
        policy = load_local(path)
        for split in ("train", "test"):
            out = analyse(policy, task, split, args.problems, args.max_new_tokens)
            name = "training-split targets" if split == "train" else "held-out targets"
            print(f"{path} — {name}: greedy pass@1 {out['pass@1']:.3f} (n = {args.problems}), "
                  f"mean {out['mean tokens']} tokens")
            print(f"  first error of the failed traces: {out['first error of failed traces']}")
            print(f"  per try line ({out['try lines']}): {out['per try line']}")


if __name__ == "__main__":
    main()
