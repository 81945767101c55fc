"""End to end: `searchlearn demo --quick` (initialization, a round of expert iteration, a round of GRPO, a search
sweep) writes every output, and `--resume` after a kill finishes the run."""

import json
import re
import signal
import subprocess
import time

import pytest
from conftest import min_content_width


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("demo")
    t0 = time.time()
    proc = cli("demo", "--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, time.time() - t0


def test_quick_demo_writes_all_outputs(quick_run):
    out, seconds = quick_run
    metrics = json.loads((out / "metrics.json").read_text())
    for phase in ("init", "final"):
        assert set(metrics[phase]) >= {"pass@1", "maj@4", "pass@4"}
        assert all(0.0 <= v <= 1.0 for v in metrics[phase].values())
    assert metrics["params"] > 0 and metrics["wall_seconds"] > 0
    assert [r["round"] for r in metrics["rounds"]] == [0, 1, 2]
    assert [r["learner"] for r in metrics["rounds"][1:]] == ["expert_iteration", "grpo"]  # the loop, with RL in it
    assert all(r["train_generated_tokens"] > 0 for r in metrics["rounds"][1:])
    assert metrics["final"] == {k: metrics["rounds"][-1][k] for k in metrics["final"]}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["learn/loss"] for r in records if r.get("phase") == "init" and "learn/loss" in r]
    assert len(losses) >= 5 and losses[-1] < losses[0]  # initialization learned something
    curves = json.loads((out / "search_curves.json").read_text())
    strategies = {(r["strategy"], r["budget"]) for r in curves}
    assert strategies >= {("beam (gold)", 2), ("beam (gold)", 4), ("bon_majority", 4), ("pass@n", 4)}
    guided = {("beam (learned:prm_soft)", 4), ("bon_weighted (learned:prm_soft)", 4)}  # the sweep the PRM guides
    assert strategies >= guided
    assert sum(r["strategy"] == "bon_majority" for r in curves) == 2  # once per budget: no scorer, not repeated
    assert all({"strategy", "budget", "accuracy", "generated_tokens", "reward_tokens"} <= set(r) for r in curves)
    beam = {r["budget"]: r["generated_tokens"] for r in curves if r["strategy"] == "beam (gold)"}
    assert 0 < beam[2] < beam[4]  # a bigger budget spends more tokens
    assert all(r["reward_tokens"] > 0 for r in curves if r["strategy"] == "beam (learned:prm_soft)")  # PRM charged
    assert any(r.get("phase") == "round2" and "learn/reward" in r for r in records)  # GRPO's reward curve
    for png in ("pass_at_k.png", "loss.png", "rounds.png", "search_curves.png", "reward.png",
                "accuracy_vs_compute.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    reward = json.loads((out / "reward_eval.json").read_text())
    assert set(reward) >= {"_data", "confidence", "selfeval", "prm_soft", "orm"}
    assert all({"step_auc", "first_error_acc", "rerank@4", "outcome_auc", "ece"} <= set(reward[name])
               for name in ("confidence", "selfeval", "prm_soft", "orm"))
    assert reward["_data"]["samples"] == 4 and reward["_data"]["problems"] == 8
    assert reward["_data"]["outcome_labelled_solutions"] == 8 * 2  # the ORM's extra outcome-only solutions
    assert (out / "reward" / "prm_soft" / "reward_model.safetensors").exists()
    assert (out / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert "Reward models against gold labels" in html and "Test-time search" in html
    assert "data:image/png;base64" in html and "-&gt;" in html  # figures and example traces are inlined
    summary = html[html.index("<h2>Summary"):html.index("<h2>Held-out accuracy")]
    init, final = metrics["init"]["pass@1"], metrics["final"]["pass@1"]
    assert f"went from {init:.3f}" in summary and f"to {final:.3f}" in summary  # the run's own figures
    trees = html[html.index("<h2>Search trees"):]
    assert trees.count("<svg") == 2 and "beam on" in trees and "mcts on" in trees
    assert "The model&#x27;s own words" in html or "The model's own words" in html
    tables = re.findall(r"<table>.*?</table>", html, re.S)
    assert tables and max(min_content_width(t) for t in tables) <= 1200  # no table runs past a laptop screen
    assert (out / "policy" / "model.safetensors").exists()


def test_eval_command_on_the_demo_policy(quick_run, tmp_path, cli):
    out, _ = quick_run
    proc = cli("eval", "--quick", "--model", str(out / "policy"), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "metrics.json").read_text())
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert result["metrics"]["pass@1"] == pytest.approx(final["pass@1"])  # same policy, same problems, greedy


def test_eval_with_gold_guided_beam_on_the_demo_policy(quick_run, tmp_path, cli):
    out, _ = quick_run
    proc = cli("eval", "--quick", "--model", str(out / "policy"), "--search", "beam", "--scorer", "gold",
                   "--budget", "4", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert metrics["search/scorer"] == "gold" and 0.0 <= metrics["search/accuracy"] <= 1.0
    assert metrics["ledger/generated_tokens"] > 0 and metrics["ledger/reward_tokens"] == 0  # the oracle costs nothing


def test_killed_demo_resumes_to_the_same_result(quick_run, tmp_path, cli):
    out, _ = quick_run
    proc = subprocess.Popen(cli.argv("demo", "--quick", "--out", str(tmp_path)),
                            env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (tmp_path / "ckpt" / "init" / "trainer_state.json").exists():  # first SFT checkpoint
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = cli("demo", "--quick", "--out", str(tmp_path), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((out / "metrics.json").read_text())
    b = json.loads((tmp_path / "metrics.json").read_text())
    assert a["init"] == b["init"] and a["final"] == b["final"]


def test_bad_override_is_a_clear_error(tmp_path, cli):
    proc = cli("demo", "--quick", "--out", str(tmp_path), "--set", "init.stepz=3")
    assert proc.returncode == 2 and "valid keys" in proc.stderr
