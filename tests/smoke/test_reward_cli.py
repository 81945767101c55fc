"""`searchlearn reward train` then `reward eval` end to end on a tiny random policy: a saved head, reused MC labels,
and reward_eval.json with an entry per model. In-process through `cli.main`."""

import json

import torch

from searchlearn.cli.main import main
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.tasks.countdown import WORDS

SMALL = ["--quick", "--max-new-tokens", "12"]


def save_tiny_policy(directory) -> str:
    """A random one-layer policy with the Countdown digit tokenizer, saved to `directory`."""
    tok = TaskTokenizer(WORDS, digits=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                         bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id))
    model.save_pretrained(directory)
    tok.save(directory)
    return str(directory)


def test_reward_train_and_eval(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEARCHLEARN_QUIET", "1")

    def run(*args):  # in-process: three interpreter start-ups would cost more than the work
        main(["reward", *args])
        return capsys.readouterr().out

    policy = save_tiny_policy(tmp_path / "policy")
    run("train", "--model", policy, "--kind", "prm", "--problems", "3", "--samples", "2", "--rollouts", "2",
        "--steps", "3", "--batch-size", "2", "--out", str(tmp_path / "prm"), *SMALL)
    labels = json.loads((tmp_path / "prm" / "mc_labels.json").read_text())
    assert len(labels) == 6 and all(len(r["soft"]) == len(r["steps"]) for r in labels)
    run("train", "--model", policy, "--kind", "orm", "--labels-from", str(tmp_path / "prm" / "mc_labels.json"),
        "--steps", "2", "--batch-size", "2", "--out", str(tmp_path / "orm"), *SMALL)
    out = run("eval", "--model", policy, "--rm", str(tmp_path / "prm"), "--rm", str(tmp_path / "orm"),
              "--problems", "3", "--samples", "2", "--out", str(tmp_path / "eval"), *SMALL)
    result = json.loads((tmp_path / "eval" / "reward_eval.json").read_text())
    assert {"prm_soft", "orm", "confidence", "_data"} <= set(result)
    for name in ("prm_soft", "orm"):
        assert {"step_auc", "first_error_acc", "rerank@2"} <= set(result[name])
    assert "prm_soft" in out and "step_auc" in out
    # self-evaluation is a baseline beside confidence; every scorer gets its calibration (ECE + reliability bins)
    for name in ("prm_soft", "orm", "confidence", "selfeval"):
        r = result[name]
        assert {"step_auc", "first_error_acc", "rerank@2", "ece", "calibration"} <= set(r)
        assert len(r["calibration"]) == 10 and sum(b["count"] for b in r["calibration"]) == result["_data"]["steps"]
        assert r["ece"] is None or 0.0 <= r["ece"] <= 1.0
    assert "selfeval" in out and "ece=" in out
    assert (tmp_path / "eval" / "calibration.png").read_bytes()[:4] == b"\x89PNG"


def test_reward_train_disc_two_rounds_and_eval(tmp_path, capsys, monkeypatch):
    """--kind disc: 2 adversarial rounds (D update, then a GRPO step on D's logit) through the CLI; D is saved like the
    other heads, the trained policy beside it, and `reward eval --rm` reports D's outcome AUC vs correctness."""
    monkeypatch.setenv("SEARCHLEARN_QUIET", "1")
    policy = save_tiny_policy(tmp_path / "policy")
    main(["reward", "train", "--model", policy, "--kind", "disc", "--rounds", "2", "--problems", "3", "--samples",
          "2", "--steps", "2", "--batch-size", "4", "--policy-steps", "1", "--out", str(tmp_path / "disc"), *SMALL])
    assert "discriminator disc (2 rounds)" in capsys.readouterr().out
    meta = json.loads((tmp_path / "disc" / "reward_config.json").read_text())
    assert meta["kind"] == "orm" and meta["name"] == "disc" and len(meta["train"]["rounds"]) == 2
    assert (tmp_path / "disc" / "reward_model.safetensors").is_file()
    assert (tmp_path / "disc" / "policy" / "config.json").is_file()
    main(["reward", "eval", "--model", policy, "--rm", str(tmp_path / "disc"), "--problems", "3", "--samples", "2",
          "--out", str(tmp_path / "eval"), *SMALL])
    result = json.loads((tmp_path / "eval" / "reward_eval.json").read_text())
    for name in ("disc", "confidence"):
        assert {"step_auc", "outcome_auc", "rerank@2"} <= set(result[name])
