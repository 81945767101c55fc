"""End to end in the vLLM environment: `searchlearn loop --backend vllm` runs a GRPO round whose rollouts and
evaluations vLLM samples from the learner's weights; `searchlearn eval --backend vllm` agrees with the native engine
on the checkpoint it leaves (greedy pass@1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("vllm")

ROOT = Path(__file__).resolve().parents[2]
QUICK = str(ROOT / "configs" / "loop_quick.yaml")
VLLM_SIZE = ["--set", "init.model.num_attention_heads=2", "--set", "init.model.num_key_value_heads=1"]  # head_dim 32
VLLM_OPTIONS = ["--set", "policy.vllm.dtype=float32", "--set", "policy.vllm.gpu_memory_utilization=0.1"]  # as native
EVAL = ["--set", "task.k=2", "--set", "eval.problems=16", "--set", "sweep_problems=0", "--set", "eval.samples=4", "--set", "eval.ks=[1,4]",
        "--set", "eval.max_new_tokens=128"]  # the loop_quick config's held-out evaluation


def searchlearn(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEARCHLEARN_QUIET": "1"}
    return subprocess.run([sys.executable, "-m", "searchlearn.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_grpo_round_with_the_vllm_backend(tmp_path):
    out = tmp_path / "loop"
    proc = searchlearn("loop", QUICK, "--out", str(out), "--backend", "vllm", "--set", "phases.0.rounds=0",
                       *VLLM_SIZE, *VLLM_OPTIONS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    rows = metrics["rounds"]
    assert [r["learner"] for r in rows] == ["init", "grpo"] and rows[1]["train_generated_tokens"] > 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("phase") == "round1" and r.get("learn/updates", 0) > 0 for r in records)  # GRPO stepped
    before = load_file(str(out / "ckpt" / "init" / "model.safetensors"))
    after = load_file(str(out / "policy" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)

    evals = {}
    for backend in ("native", "vllm"):
        proc = searchlearn("eval", "--model", str(out / "policy"), "--out", str(tmp_path / backend), "--backend",
                           backend, *EVAL, *VLLM_OPTIONS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        evals[backend] = json.loads((tmp_path / backend / "metrics.json").read_text())["metrics"]
    assert evals["vllm"]["pass@1"] == evals["native"]["pass@1"] == rows[-1]["pass@1"]
