"""`searchlearn search` end to end on a tiny random checkpoint: curves JSON with every strategy × budget, and a PNG."""

import json
import os
import subprocess
import sys

import pytest
import torch

from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.tasks.countdown import WORDS


def test_search_command_writes_curves(tmp_path):
    tok = TaskTokenizer(WORDS, max_number=999)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                         bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id))
    model.save_pretrained(tmp_path / "policy")
    tok.save(tmp_path / "policy")
    out = tmp_path / "search"
    proc = subprocess.run(
        [sys.executable, "-m", "searchlearn.cli", "search", "--model", str(tmp_path / "policy"), "--quick",
         "--set", "eval.max_new_tokens=12", "--strategies", "bon,beam,dvts,mcts,revision", "--budgets", "2,4",
         "--problems", "3", "--scorer", "confidence", "--out", str(out)],
        env={**os.environ, "SEARCHLEARN_QUIET": "1", "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "search_curves.json").read_text())
    names = {r["strategy"] for r in rows}
    assert names == {"bon_majority", "bon_weighted", "pass@n", "beam", "dvts", "mcts", "revision"}
    for r in rows:
        assert {"strategy", "budget", "accuracy", "generated_tokens", "reward_tokens"} <= set(r)
        assert r["budget"] in (2, 4) and 0.0 <= r["accuracy"] <= 1.0
        assert 0 < r["generated_tokens"] <= r["budget"] * 12  # the per-problem cap: n × max_new_tokens
    assert (out / "search_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_search_command_rejects_an_unknown_strategy(tmp_path, capsys):
    from searchlearn.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--model", str(tmp_path), "--strategies", "bon,nope", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "unknown strategies ['nope']" in capsys.readouterr().err
