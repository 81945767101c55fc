"""End to end on the code task: `searchlearn loop configs/loop_code.yaml`, shrunk, initializes a tiny policy on the
code traces, runs a GRPO round whose episodes run the model's programs in the sandbox, and writes its rounds."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_loop_runs_on_the_code_task(tmp_path, cli):
    proc = cli("loop", str(ROOT / "configs" / "loop_code.yaml"), "--out", str(tmp_path),
               "--set", "init.model.hidden_size=64", "--set", "init.model.num_hidden_layers=2",
               "--set", "init.model.intermediate_size=192", "--set", "init.n_train=300",
               "--set", "init.sft.steps=80", "--set", "init.sft.compile=false", "--set", "phases.0.rounds=1",
               "--set", "phases.0.grpo.steps=2", "--set", "phases.0.grpo.prompts_per_step=4",
               "--set", "phases.0.grpo.group_size=4", "--set", "eval.problems=12", "--set", "curve.problems=12")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["learner"] for r in metrics["rounds"]] == ["init", "grpo"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("phase") == "round1" and "learn/reward" in r]
    assert len(steps) == 2 and all(0.0 <= r["learn/reward"] <= 1.0 for r in steps)
    assert json.loads((tmp_path / "ckpt" / "init" / "searchlearn_tokenizer.json").read_text())["symbols"] == \
        ["[", "]", "%", "<"]
