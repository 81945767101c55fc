"""Why self-evaluation does not guide search here: its step AUC against gold, by kind of Countdown line. Not a test.

Samples solutions to held-out problems, scores every step with the policy's self-evaluation (reward/selfeval.py) and
the gold labels, and reports per line kind (final "... vs T yes|no" lines, operation "|" lines, "try", "back",
check/answer): how many, the share gold-good, and the AUC of the self-evaluation against gold. For final lines it
also reports how often the verdict the policy *wrote* is right, and how often the self-evaluation sides with the
written verdict: the judge is the writer, in the same context, so where the writer slips the judge mostly agrees.

    python benchmarks/selfeval_lines.py --model runs/demo/policy --problems 128 --samples 8
"""

from __future__ import annotations

import argparse
import json

from searchlearn.policy.hf import load_policy
from searchlearn.policy.prompts import format_problems
from searchlearn.reward.pipeline import sample_solutions
from searchlearn.reward.quality import auc
from searchlearn.reward.selfeval import SelfEvalScorer
from searchlearn.tasks.registry import DEFAULT_TASK, DefaultTaskConfig


def kind(line: str) -> str:
    text = line.strip()
    if " vs " in text:
        return "final (vs T yes|no)"
    for word in ("back", "try", "check", "answer"):
        if text.startswith(word):
            return word if word in ("back", "try") else "check/answer"
    return "operation (a op b=c | rest)" if "|" in text else "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--problems", type=int, default=128)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    task = DEFAULT_TASK.build(DefaultTaskConfig())
    policy = load_policy(args.model, backend="native")
    problems = format_problems(task.problems("test", args.problems, seed=args.seed + 1), policy.tokenizer, task.name,
                               "task")
    owners, texts = sample_solutions(policy, problems, args.samples, 288, args.seed)
    scores = SelfEvalScorer(policy, task)(owners, texts)
    rows: dict[str, list[tuple[float, float, str]]] = {}
    for problem, text, row in zip(owners, texts, scores):
        for line, gold, score in zip(task.steps(text), task.gold_step_values(problem, text), row):
            rows.setdefault(kind(line), []).append((score, gold, line))
    out = {}
    for name, items in sorted(rows.items(), key=lambda kv: -len(kv[1])):
        s, g = [x[0] for x in items], [x[1] for x in items]
        out[name] = {"lines": len(items), "gold_good": sum(g) / len(g), "auc": auc(s, g)}
    finals = rows.get("final (vs T yes|no)", [])
    if finals:
        wrote_yes = [line.strip().endswith("yes") for _, _, line in finals]
        right = [w == (g >= 0.5) for w, (_, g, _) in zip(wrote_yes, finals)]
        sides = [(s >= 0.5) == w for w, (s, _, _) in zip(wrote_yes, finals)]
        wrong = [sd for sd, r in zip(sides, right) if not r]
        out["final verdicts"] = {"written_right": sum(right) / len(right),
                                 "selfeval_sides_with_written": sum(sides) / len(sides),
                                 "selfeval_sides_with_written_where_wrong": sum(wrong) / max(1, len(wrong)),
                                 "wrong_verdicts": len(wrong)}
    steps = [x for items in rows.values() for x in items]
    out["all"] = {"lines": len(steps), "auc": auc([x[0] for x in steps], [x[1] for x in steps])}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
