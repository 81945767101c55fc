"""The vLLM backend (policy/vllm_policy.py) against the project's engine, on tiny checkpoints built from configs.

Runs in the vLLM environment (`make test-vllm`); skipped where vLLM is not installed. Greedy tokens equal the native
engine's, per-token logprobs agree to 1e-3, the ledger counts vLLM's prefix-cache hits, a learner step reaches the
running engine (and its prefix cache is dropped), a GRPO loop round runs end to end, and bad input is a clear error.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os

import pytest
import torch

pytest.importorskip("vllm")

from searchlearn.config import ConfigError  # noqa: E402
from searchlearn.policy.hf import load_policy  # noqa: E402
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM  # noqa: E402
from searchlearn.policy.policy import LocalPolicy  # noqa: E402
from searchlearn.policy.tiny import spread_weights, tiny_checkpoint  # noqa: E402
from searchlearn.policy.tokenizer import TaskTokenizer  # noqa: E402
from searchlearn.policy.vllm_policy import VLLMOptions, on_gpu  # noqa: E402
from searchlearn.tasks.countdown import WORDS  # noqa: E402
from searchlearn.types import SamplingParams  # noqa: E402

TOL = 1e-3
DEVICE = os.environ.get("SEARCHLEARN_TEST_DEVICE", "cpu")  # the learner's; vLLM uses the GPU wherever it has one
OPTIONS = VLLMOptions(dtype="float32", gpu_memory_utilization=0.1)  # parity in float32; several engines on one GPU
PROMPTS = ["3 7 25 -> 46\n", "4 9 -> 36\n", "2 5 8 -> 18\n", "6 6 -> 12\n"]
LONG = "1 2 3 4 5 6 7 8 9 -> 45\n" * 6  # > 2 vLLM blocks of 32 tokens: cached across calls


def task_checkpoint(directory, seed: int = 0):
    """A searchlearn checkpoint (Countdown's tokenizer) of a random Llama: head_dim 32 (vLLM's CPU attention needs
    ≥ 32), GQA 2:1, untied head, weights spread so that greedy choices are clear."""
    tokenizer = TaskTokenizer(WORDS, max_number=99)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                         max_position_embeddings=256, tie_word_embeddings=False))
    spread_weights(model, seed)
    model.save_pretrained(directory)
    tokenizer.save(directory)
    return directory


def open_vllm(directory, **options):
    return load_policy(directory, backend="vllm", device=DEVICE, vllm=dataclasses.replace(OPTIONS, **options))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return task_checkpoint(tmp_path_factory.mktemp("task"))


@pytest.fixture(scope="module")
def pair(checkpoint):
    """(vLLM policy, native policy) on the same checkpoint."""
    return open_vllm(checkpoint), load_policy(checkpoint, backend="native", device=DEVICE)


def assert_same(a, b):
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    assert [c.finish_reason for c in a] == [c.finish_reason for c in b]
    assert [c.text for c in a] == [c.text for c in b]
    for x, y in zip(a, b):
        assert len(x.logprobs) == len(y.logprobs)
        assert max((abs(u - v) for u, v in zip(x.logprobs, y.logprobs)), default=0) <= TOL


def test_greedy_tokens_and_logprobs_equal_the_native_engine(pair):
    vllm_policy, native = pair
    params = SamplingParams(n=2, temperature=0, max_new_tokens=40)
    before = vllm_policy.ledger.copy()
    out = vllm_policy.generate(PROMPTS, params)
    assert [c.prompt_index for c in out] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert_same(out, native.generate(PROMPTS, params))
    spent = vllm_policy.ledger.since(before)
    assert spent.generated_tokens == sum(c.num_tokens + (c.finish_reason == "eos") for c in out)


def test_stop_strings_end_steps_as_the_native_engine(pair):
    vllm_policy, native = pair
    free = native.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=40))
    stop = native.tokenizer.decode(free[0].token_ids[2:3])  # a token the greedy path writes early
    params = SamplingParams(temperature=0, max_new_tokens=40, stop=(stop,))
    out = vllm_policy.generate(PROMPTS, params)
    assert out[0].finish_reason == "stop" and out[0].text.endswith(stop) and len(out[0].token_ids) == 3
    assert_same(out, native.generate(PROMPTS, params))


def test_sampled_logprobs_are_the_learners(pair):
    """Sampling (temperature 1.3, top-p 0.9): the logprobs vLLM returns are the raw model's, as the learner
    recomputes them; a seeded call is repeatable."""
    vllm_policy, _ = pair
    params = SamplingParams(n=4, temperature=1.3, top_p=0.9, max_new_tokens=30, seed=5)
    out = vllm_policy.generate(PROMPTS, params)
    ids = vllm_policy.encode_prompts(PROMPTS)
    with torch.no_grad():
        learner = vllm_policy.logprobs([ids[c.prompt_index] for c in out], [c.token_ids for c in out])
    for c, lp in zip(out, learner):
        assert torch.allclose(torch.tensor(c.logprobs), lp, atol=TOL)
    again = vllm_policy.generate(PROMPTS, params)
    assert [c.token_ids for c in again] == [c.token_ids for c in out]
    assert len({tuple(c.token_ids) for c in out}) > len(PROMPTS)  # samples differ


def test_prefix_cache_hits_are_charged_as_not_prefilled(pair):
    vllm_policy, _ = pair
    params = SamplingParams(temperature=0, max_new_tokens=4)
    n = len(vllm_policy.encode_prompts([LONG + "7 "])[0])
    first = vllm_policy.ledger.copy()
    vllm_policy.generate([LONG + "7 "], params)
    second = vllm_policy.ledger.copy()
    vllm_policy.generate([LONG + "8 "], params)
    assert second.since(first).prefilled_tokens == n
    assert second.since(first).prefilled_tokens - vllm_policy.ledger.since(second).prefilled_tokens >= 64


def test_a_learner_step_reaches_the_running_engine(tmp_path):
    """One Adam step at lr 0.05: the engine's logprobs follow the learner's new weights, not the old ones, and
    the prefix cache (K/V of the old weights) is dropped."""
    policy = open_vllm(task_checkpoint(tmp_path))
    params = SamplingParams(temperature=0, max_new_tokens=12)
    prompts = [LONG + p for p in PROMPTS]
    ids = policy.encode_prompts(prompts)
    old_model = copy.deepcopy(policy.model)
    policy.generate(prompts, params)  # fills the prefix cache
    out = policy.generate(prompts, params)
    opt = torch.optim.Adam(policy.model.parameters(), lr=0.05)
    loss = -torch.cat(policy.logprobs(ids, [c.token_ids for c in out])).sum()
    loss.backward()
    opt.step()
    assert policy.synced_version == 0
    before = policy.ledger.copy()
    policy.generate(prompts[:1], params)
    assert policy.synced_version == 1
    assert policy.ledger.since(before).prefilled_tokens == len(ids[0])  # nothing reused from the old weights' K/V
    new = policy.generate(prompts, params)
    with torch.no_grad():
        learner = policy.logprobs(ids, [c.token_ids for c in new])
        stale = LocalPolicy(old_model, policy.tokenizer).logprobs(ids, [c.token_ids for c in new])
    for c, lp, old in zip(new, learner, stale):
        assert torch.allclose(torch.tensor(c.logprobs), lp, atol=TOL)
    assert max((torch.tensor(c.logprobs) - old).abs().max() for c, old in zip(new, stale)) > 0.05
    policy.generate(prompts, params)
    assert policy.synced_version == 1  # unchanged weights are not sent again


def test_hf_checkpoint_stops_on_strings_spanning_tokens(tmp_path):
    """A Qwen2 checkpoint with its own tokenizer (vLLM's stop strings): "\\n\\n" is one token or two newlines."""
    directory = tiny_checkpoint(tmp_path, "qwen2", num_attention_heads=2, num_key_value_heads=1)
    vllm_policy, native = open_vllm(directory), load_policy(directory, backend="native", device=DEVICE)
    prompts = ["What is 7 * 6?\n", "Natalia sold 48 clips.\n\n", "a\nb\n"]
    for stop in (("\n\n",), ("\n", "7")):
        params = SamplingParams(temperature=0, max_new_tokens=48, stop=stop)
        assert_same(vllm_policy.generate(prompts, params), native.generate(prompts, params))


def test_bad_input_is_a_clear_error(checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="exceeds the model's context"):
        open_vllm(checkpoint, max_model_len=4096)
    policy = open_vllm(checkpoint, max_model_len=64)
    with pytest.raises(ValueError, match="no room to generate within max_model_len=64"):
        policy.generate([LONG * 2], SamplingParams(max_new_tokens=4))
    alien = task_checkpoint(tmp_path)
    config = json.loads((alien / "config.json").read_text())
    (alien / "config.json").write_text(json.dumps({**config, "architectures": ["SearchlearnToyForCausalLM"]}))
    with pytest.raises(ConfigError, match="vLLM cannot serve this checkpoint.*SearchlearnToyForCausalLM"):
        open_vllm(alien)
    if not on_gpu():  # head size 16: vLLM's CPU kernels have none, and would fail at the first generate
        config["num_attention_heads"], config["num_key_value_heads"] = 4, 2  # the same weight shapes
        (alien / "config.json").write_text(json.dumps({**config, "head_dim": 16}))
        with pytest.raises(ConfigError, match=r"CPU attention supports head sizes \[32, .*this model's is 16"):
            open_vllm(alien)
