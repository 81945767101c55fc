"""End to end: `searchlearn loop configs/loop_quick.yaml --set init_from=DIR` from a tiny Hugging Face checkpoint
(written by transformers, with its own byte-level BPE tokenizer and chat template): a round of expert iteration and a
round of GRPO train it through the chat-formatted prompts, and OUT/policy is an HF checkpoint again. A checkpoint the
project's model cannot hold is a clear error."""

import json
import random
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file

from searchlearn.learn.sft import SFTConfig, train_sft
from searchlearn.policy.hf import load_policy
from searchlearn.policy.hf_tokenizer import HFTokenizer
from searchlearn.policy.policy import LocalPolicy, encode_prompts
from searchlearn.policy.prompts import format_problems
from searchlearn.policy.tiny import tiny_checkpoint
from searchlearn.tasks.countdown import CountdownConfig, CountdownTask

ROOT = Path(__file__).resolve().parents[2]
QUICK = str(ROOT / "configs" / "loop_quick.yaml")
SMALL = ["prompt=none", "eval.problems=8", "eval.max_new_tokens=64", "phases.0.searcher.max_new_tokens=64",
         "phases.1.grpo.max_new_tokens=64"]  # short byte-level traces; the chat template without a system prompt
transformers.logging.set_verbosity_error()



def countdown_checkpoint(directory: Path) -> Path:
    """A tiny random HF Llama taught Countdown's trace format (k = 2) by 150 SFT steps on chat-formatted training
    problems, so that some of its samples are right and the learners get data; saved by transformers itself."""
    raw = tiny_checkpoint(directory / "raw", "llama", intermediate_size=192)
    policy = load_policy(raw)
    task = CountdownTask(CountdownConfig(k=2, style="optimal"))
    problems = format_problems(task.problems("train", 1000, seed=123), policy.tokenizer, task.name, "none")
    rng = random.Random(0)
    tok = policy.tokenizer
    completions = tok.encode_batch([task.trace(p, rng) for p in problems])
    examples = [(p, c + [tok.eos_id]) for p, c in zip(encode_prompts(tok, [p.prompt for p in problems]), completions)]
    train_sft(policy.model, examples, SFTConfig(steps=150, lr=3e-3, warmup_steps=10, checkpoint_every=0), tok.pad_id)
    hf = transformers.AutoModelForCausalLM.from_pretrained(raw)
    hf.load_state_dict(policy.model.state_dict())
    start = directory / "start"
    hf.save_pretrained(start)
    tok.save(start)
    return start


def test_loop_trains_a_hf_checkpoint(tmp_path, cli1):
    start = countdown_checkpoint(tmp_path)
    out = tmp_path / "run"
    proc = cli1("loop", QUICK, "--out", str(out), "--set", f"init_from={start}", *[x for s in SMALL
                                                                                      for x in ("--set", s)])
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    rows = metrics["rounds"]
    assert [r["round"] for r in rows] == [0, 1, 2] and metrics["init_from"] == str(start)
    assert [r["learner"] for r in rows[1:]] == ["expert_iteration", "grpo"]
    assert all(0.0 <= r[k] <= 1.0 for r in rows for k in ("pass@1", "maj@4", "pass@4"))
    assert all(r["train_generated_tokens"] > 0 for r in rows[1:]) and rows[1]["train_accuracy"] > 0
    learned = json.loads((out / "stages" / "round1_learn.json").read_text())["learn"]
    assert learned["steps"] == 20  # expert iteration found correct samples and trained on them
    prompt = json.loads((out / "stages" / "eval_init.json").read_text())["examples"][0]["prompt"]
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n")  # the chat template
    before = load_file(str(start / "model.safetensors"))
    for trained in (out / "ckpt" / "round1", out / "policy"):
        after = load_file(str(trained / "model.safetensors"))
        assert set(after) == set(before) and any(not torch.equal(before[k], after[k]) for k in before)
    final, first = load_policy(out / "policy"), load_policy(start)  # an HF checkpoint again, same tokenizer
    assert isinstance(final, LocalPolicy) and isinstance(final.tokenizer, HFTokenizer)
    assert final.tokenizer.eos_ids == first.tokenizer.eos_ids
    chat = [{"role": "user", "content": "3 7 -> 10\n"}]
    assert final.tokenizer.apply_chat_template(chat) == first.tokenizer.apply_chat_template(chat)
    assert "data:image/png;base64" in (out / "report.html").read_text()


def test_a_checkpoint_the_loop_cannot_train_is_a_clear_error(tmp_path, cli1):
    rope = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}
    directory = tiny_checkpoint(tmp_path / "yarn", "llama", rope_scaling=rope)
    proc = cli1("loop", QUICK, "--out", str(tmp_path / "run"), "--set", f"init_from={directory}")
    assert proc.returncode == 2
    assert "rope_type 'yarn'" in proc.stderr and "the loop cannot train it" in proc.stderr
    assert "Traceback" not in proc.stderr
