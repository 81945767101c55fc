"""End to end: `searchlearn loop configs/loop_quick.yaml` (a tiny policy initialized in the run, a round of expert
iteration on best-of-N, a round of GRPO) writes every output, and a run killed mid-way resumes to the same result."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
QUICK = str(ROOT / "configs" / "loop_quick.yaml")



@pytest.fixture(scope="module")
def quick_loop(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("loop")
    t0 = time.time()
    proc = cli("loop", QUICK, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, time.time() - t0


def test_quick_loop_writes_rounds_and_changes_the_policy(quick_loop):
    out, seconds = quick_loop
    assert seconds <= 60
    metrics = json.loads((out / "metrics.json").read_text())
    rows = metrics["rounds"]
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert [r["learner"] for r in rows[1:]] == ["expert_iteration", "grpo"]
    assert rows[1]["searcher"] == "bon(n=4)" and rows[2]["searcher"] == "sampling(G=4)"
    for row in rows:
        assert set(row) >= {"round", "learner", "searcher", "pass@1", "maj@4", "pass@4", "train_generated_tokens"}
        assert all(0.0 <= row[k] <= 1.0 for k in ("pass@1", "maj@4", "pass@4"))
    assert all(r["train_generated_tokens"] > 0 for r in rows[1:])
    assert metrics["final"] == {k: rows[-1][k] for k in metrics["final"]}
    assert metrics["params"] > 0 and metrics["wall_seconds"] > 0
    before = load_file(str(out / "ckpt" / "init" / "model.safetensors"))
    after = load_file(str(out / "policy" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the rounds trained the policy
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records if r.get("phase") == "eval"] == [0, 1, 2]
    assert any(r.get("phase") == "round2" and "learn/reward" in r for r in records)
    for png in ("pass_at_k.png", "rounds.png", "loss.png", "reward.png", "accuracy_vs_compute.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64" in (out / "report.html").read_text()


@pytest.mark.parametrize("marker", ["stages/round1_search.json", "ckpt/round2/trainer_state.json"])
def test_killed_loop_resumes_to_the_same_metrics(quick_loop, tmp_path, marker, cli):
    """SIGKILL once the first round's search stage is written (the kill lands in its SFT), or once GRPO has its first
    checkpoint; `--resume` must end with the uninterrupted run's metrics, each stage done once."""
    out, _ = quick_loop
    proc = subprocess.Popen(cli.argv("loop", QUICK, "--out", str(tmp_path)),
                            env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (tmp_path / marker).exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "metrics.json").exists()
    resumed = cli("loop", QUICK, "--out", str(tmp_path), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((out / "metrics.json").read_text())
    b = json.loads((tmp_path / "metrics.json").read_text())
    assert a["rounds"] == b["rounds"] and a["init"] == b["init"] and a["final"] == b["final"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records if r.get("phase") == "eval"] == [0, 1, 2]
    assert sum(r.get("phase") == "round1_search" for r in records) == 1


def test_unknown_learner_is_a_clear_cli_error(tmp_path, cli):
    proc = cli("loop", QUICK, "--out", str(tmp_path), "--set", "phases.1.learner=grpoo")
    assert proc.returncode == 2 and "valid learners" in proc.stderr and "dr_grpo" in proc.stderr


def test_missing_init_checkpoint_is_a_clear_cli_error(tmp_path, cli):
    proc = cli("loop", QUICK, "--out", str(tmp_path), "--set", f"init_from={tmp_path / 'nowhere'}")
    assert proc.returncode == 2 and "init_from" in proc.stderr
