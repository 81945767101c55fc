"""Countdown with a tool against without: greedy pass@1 on held-out and training-split targets.

Each checkpoint is evaluated on its own trace format: `--checks tool` checkpoints (trained with
`searchlearn init --set task.checks=tool`) through the multi-turn environment that answers their "need T x ?" and
"check EXPR ?" calls (tasks/countdown_tool.py), the others single-turn. Also the mean number of tool calls and of
tokens the model wrote, and the share of final moves ("c op x = r vs T ...") whose r is the target although c op x
is not: a made-up result. For the failed traces, what the gold step labels find in them
(`failed_traces`: an arithmetic error, else a wrong answer, else dead ends only), and the share of traces with no answer
line (out of budget).

    python benchmarks/countdown_tool.py runs/init0/policy:need runs/init0_tool/policy:tool --problems 1000
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import time

from searchlearn.loop.rounds import load_local
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.best_of_n import sample
from searchlearn.tasks.countdown import CountdownConfig, CountdownTask, apply_op
from searchlearn.types import SamplingParams


FINAL = re.compile(r"^(\d+)([-+*/])(\d+)=(\d+) vs \d+ (?:yes|no)$", re.MULTILINE)  # a final move line


def measure(path: str, checks: str, problems: int, max_new_tokens: int, seed: int, corrections: float,
            verdict: str = "model", splits: tuple[str, ...] = ("test", "train")) -> dict:
    task = CountdownTask(CountdownConfig(checks=checks, corrections=corrections, verdict=verdict))
    policy = load_local(path)
    out = {"model": path, "checks": checks}
    for split in splits:
        batch = task.problems(split, problems, seed=seed + 1 if split == "test" else 999_983)
        start = time.perf_counter()
        results = sample(batch, policy, task, SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens,
                                                             seed=seed), VerifierReward(task))
        trajectories = [r.trajectories[0] for r in results]
        p = sum(t.reward for t in trajectories) / len(batch)
        finals = [(m, problem.data["target"]) for problem, t in zip(batch, trajectories)
                  for m in FINAL.finditer(t.completion)]
        made_up = sum(int(m[4]) == target != apply_op(int(m[1]), m[2], int(m[3])) for m, target in finals)
        out[split] = {"pass@1": round(p, 4), "se": round((p * (1 - p) / len(batch)) ** 0.5, 4),
                      "model_tokens": round(sum(sum(t.mask) if t.mask else len(t.token_ids)
                                                for t in trajectories) / len(batch), 1),
                      "tool_calls": round(sum(t.completion.count(" ?") for t in trajectories) / len(batch), 2),
                      "made_up_final_results": round(made_up / max(1, len(finals)), 3),
                      "failed_traces": failure_kinds(task, batch, trajectories),
                      "no_answer": round(sum("answer" not in t.completion for t in trajectories) / len(batch), 3),
                      "seconds": round(time.perf_counter() - start, 1)}
    return out


def failure_kinds(task: CountdownTask, batch, trajectories) -> dict[str, int]:
    """Failed traces by what the gold step labels find in them: an arithmetic error (a wrong make value or move
    result), else a wrong answer, else only dead ends (the search ran out of budget or gave up)."""
    counts: collections.Counter = collections.Counter()
    for problem, t in zip(batch, trajectories):
        if t.reward < 1:
            marks = {mark for _, mark in task.step_marks(problem, t.completion)}
            counts[next((m for m in ("arithmetic error", "wrong answer") if m in marks), "dead ends only")] += 1
    return dict(counts.most_common())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", metavar="DIR:CHECKS", help="checkpoint directory and its trace format "
                   "(need | forward | tool)")
    p.add_argument("--problems", type=int, default=1000, help="problems per split (standard error ≈ 0.5/√n)")
    p.add_argument("--max-new-tokens", type=int, default=400, help="tokens per completion (tool answers included)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corrections", type=float, default=0.2, help="task.corrections (the traces' slips; not the "
                   "evaluation's: kept so that the task is the checkpoint's own)")
    p.add_argument("--verdict", default="model", choices=("model", "tool"), help="task.verdict: who writes the last "
                   "move's verdict (\"tool\": the checkpoint calls \"last a∘b T ?\")")
    p.add_argument("--splits", default="test,train", help="test (held-out targets), train, or both")
    args = p.parse_args()
    for spec in args.models:
        path, _, checks = spec.rpartition(":")
        print(json.dumps(measure(path, checks, args.problems, args.max_new_tokens, args.seed, args.corrections,
                                 args.verdict, tuple(args.splits.split(",")))),
              flush=True)


if __name__ == "__main__":
    main()
