"""`searchlearn eval --workers 2` writes the metrics `--workers 1` writes (a local Ray cluster, started and stopped
by the command)."""

import json

from conftest import STEP_TOKENIZER, tiny_model

from searchlearn.policy.tiny import spread_weights


def test_eval_with_two_workers_equals_one_process(tmp_path, cli):
    model = tmp_path / "model"
    weights = tiny_model(vocab=STEP_TOKENIZER.vocab_size)
    spread_weights(weights)  # peaked logits: no near-ties for float rounding to flip
    weights.save_pretrained(model)
    STEP_TOKENIZER.save(model)
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"w{n}"
        done = cli("eval", "--model", str(model), "--workers", str(n), "--out", str(out), "--set", "eval.problems=40",
                   "--set", "eval.max_new_tokens=32", "--budget", "4")
        assert done.returncode == 0, done.stderr
        runs[n] = json.loads((out / "metrics.json").read_text())
    assert runs[2]["metrics"] == runs[1]["metrics"]
    assert runs[2]["examples"] == runs[1]["examples"]
