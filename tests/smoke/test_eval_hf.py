"""End to end: `searchlearn eval` on a tiny Hugging Face checkpoint and a 5-line math JSONL writes metrics.json and
report.html."""

import json

from searchlearn.policy.tiny import tiny_checkpoint
from searchlearn.report.html import fmt, label

ROWS = [
    {"question": "Natalia sold 48 clips in April and half as many in May. How many in all?", "answer": "#### 72"},
    {"question": "What is 1,000 + 234?", "answer": "1000 + 234 = 1234\n#### 1,234"},
    {"problem": "Compute $\\frac{2}{4}$.", "solution": "It is $\\boxed{\\frac{1}{2}}$."},
    {"problem": "Solve $x - 3 = -5$.", "solution": "$x = \\boxed{-2}$."},
    {"question": "A shirt costs $20 after a 20% discount. What was the price?", "answer": "#### 25"},
]



def test_eval_on_a_hf_checkpoint_and_math_jsonl(tmp_path, cli1):
    model = tiny_checkpoint(tmp_path / "model", "qwen2")
    data = tmp_path / "five.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    out = tmp_path / "eval"
    proc = cli1("eval", "--model", str(model), "--data", str(data), "--task", "math", "--budget", "2",
                   "--prompt", "reasoning", "--out", str(out), "--set", "eval.max_new_tokens=6")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "metrics.json").read_text())
    metrics = result["metrics"]
    assert {"pass@1", "pass@2", "maj@2", "sample_pass@2", "mean_tokens", "ledger/generated_tokens"} <= set(metrics)
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("pass@1", "pass@2", "maj@2"))
    assert 0 < metrics["ledger/generated_tokens"] <= 5 * (1 + 2) * 6  # greedy + 2 samples, ≤ 6 tokens each
    assert len(result["examples"]) == 5
    prompt = result["examples"][0]["prompt"]
    assert prompt.startswith("<|im_start|>system\n") and "Decompose" in prompt  # chat template + reasoning prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    report = (out / "report.html").read_text()
    assert f"<td>{metrics['pass@1']:.3f}</td>" in report and f"<td>{metrics['maj@2']:.3f}</td>" in report
    assert "data:image/png;base64" in report and (out / "pass_at_k.png").read_bytes()[:4] == b"\x89PNG"
    assert report.count("<pre>") == 4 and "math task" in report  # four greedy traces


def test_eval_reports_a_malformed_line(tmp_path, cli1):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    proc = cli1("eval", "--model", str(tmp_path / "no-model"), "--data", str(data), "--out", str(tmp_path))
    assert proc.returncode == 2 and f"{data}:2: not valid JSON" in proc.stderr
    data.write_text(json.dumps(ROWS[0]) + "\n")
    proc = cli1("eval", "--model", str(tmp_path / "no-model"), "--data", str(data), "--out", str(tmp_path))
    assert proc.returncode == 2 and "no such model directory" in proc.stderr


def test_eval_with_a_tree_search_on_math(tmp_path, cli1):
    model = tiny_checkpoint(tmp_path / "model", "llama")
    data = tmp_path / "five.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    out = tmp_path / "beam"
    proc = cli1("eval", "--model", str(model), "--data", str(data), "--search", "beam", "--budget", "4",
                   "--out", str(out), "--set", "eval.max_new_tokens=8", "--step-tokens", "4")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["search/strategy"] == "beam" and metrics["search/budget"] == 4
    assert 0.0 <= metrics["search/accuracy"] <= 1.0
    assert 0 < metrics["ledger/generated_tokens"] <= 4 * 8  # the budget caps tokens (eos included) at n × max_new
    rows = json.loads((out / "search_curves.json").read_text())
    assert [(r["strategy"], r["budget"]) for r in rows] == [("beam", 4)]
    report = (out / "report.html").read_text()
    assert f"<td>{metrics['search/accuracy']:.3f}</td>" in report and "<td>beam</td>" in report
    assert f"<th>{label('ledger/generated_tokens')}</th>" in report  # the ledger, under its readable column name
    assert f"<td>{fmt(metrics['ledger/generated_tokens'], 'ledger/generated_tokens')}</td>" in report
    assert "data:image/png;base64" in report  # search_curves.png
    assert report.count("<pre>") == 4  # the chosen answers of four problems


def test_eval_on_humaneval_runs_the_completions_in_the_sandbox(tmp_path, cli1):
    model = tiny_checkpoint(tmp_path / "model", "qwen2")
    out = tmp_path / "humaneval"
    proc = cli1("eval", "--model", str(model), "--task", "humaneval", "--budget", "2", "--out", str(out),
                "--set", "eval.problems=3", "--set", "sweep_problems=3", "--set", "eval.max_new_tokens=6")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "metrics.json").read_text())
    assert result["metrics"]["pass@1"] == 0.0  # a random model's six tokens pass no tests
    assert [e["prompt"] for e in result["examples"]][0].endswith("<|im_start|>assistant\n")
    assert "def has_close_elements" in result["examples"][0]["prompt"] and len(result["examples"]) == 3
