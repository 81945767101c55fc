"""Hugging Face checkpoints in and out: Llama/Qwen2/Mistral directories and a GGUF file load into the project's model
with transformers' logits and greedy outputs; exports load back into transformers; other architectures fall back to
the transformers-backed policy; missing pieces are clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers

from searchlearn.policy.hf import UnsupportedCheckpoint, export_hf, load_policy
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.tiny import (
    spread_weights,
    tiny_checkpoint,
    tiny_model,
    tiny_tokenizer,
)
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.policy.transformers_policy import TransformersPolicy
from searchlearn.types import SamplingParams

TOL = 1e-4
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
CASES = [("llama", False), ("qwen2", True), ("qwen2", False), ("mistral", False)]  # (family, tied embeddings)
PROMPTS = ["Natalia sold 48 clips.", "What is 7 * 6?\n\n"]


def batch(vocab: int, seed: int = 0):
    """Three left-padded rows: ids (3, 12), mask (3, 12)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (3, 12), generator=g)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[0, :4], mask[1, :1] = 0, 0
    return ids, mask


def assert_same_logits(ours: LlamaForCausalLM, hf, vocab: int) -> None:
    ids, mask = batch(vocab)
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max() <= TOL
        diff = (ours(ids, attention_mask=mask) - hf(ids, attention_mask=mask).logits).abs()
        assert diff[mask.bool()].max() <= TOL


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """family/tie -> (directory, transformers model loaded from it)."""
    out = {}
    for family, tie in CASES:
        d = tiny_checkpoint(tmp_path_factory.mktemp(f"{family}{int(tie)}"), family, tie_word_embeddings=tie)
        out[family, tie] = d, transformers.AutoModelForCausalLM.from_pretrained(d).train(False)
    return out


@pytest.mark.parametrize("family,tie", CASES)
def test_logits_match_transformers(checkpoints, family, tie):
    directory, hf = checkpoints[family, tie]
    policy = load_policy(directory)
    assert isinstance(policy, LocalPolicy)
    assert policy.model.config.attention_bias == (family == "qwen2")
    assert (policy.model.lm_head.weight is policy.model.model.embed_tokens.weight) == tie
    assert_same_logits(policy.model, hf, hf.config.vocab_size)


@pytest.mark.parametrize("family,tie", CASES)
def test_engine_greedy_equals_transformers_generate(checkpoints, family, tie):
    directory, hf = checkpoints[family, tie]
    policy = load_policy(directory)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    ours = policy.generate(PROMPTS, params)  # one batched, left-padded engine call
    for prompt_ids, completion in zip(policy.encode_prompts(PROMPTS), ours):
        ref = hf.generate(torch.tensor([prompt_ids]), max_new_tokens=12, do_sample=False, top_k=None, top_p=None,
                          eos_token_id=list(policy.tokenizer.eos_ids), pad_token_id=policy.tokenizer.pad_id)
        ref = [t for t in ref[0, len(prompt_ids):].tolist() if t not in policy.tokenizer.eos_ids]
        assert completion.token_ids == ref
    assert policy.ledger.generated_tokens > 0


def test_prompts_get_bos_once(checkpoints):
    llama = load_policy(checkpoints["llama", False][0])  # adds BOS; its chat template writes BOS itself
    bos = llama.tokenizer.bos_id
    assert llama.encode_prompts(["hi"])[0] == [bos] + llama.tokenizer.encode("hi")
    chat = llama.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}])
    assert llama.encode_prompts([chat])[0].count(bos) == 1
    qwen = load_policy(checkpoints["qwen2", True][0])  # no BOS at all; ends turns with <|im_end|>
    assert qwen.tokenizer.bos_id is None and qwen.encode_prompts(["hi"])[0] == qwen.tokenizer.encode("hi")
    assert qwen.tokenizer.piece(qwen.tokenizer.eos_id) == "<|im_end|>"


def test_export_round_trip(checkpoints, tmp_path):
    directory, hf = checkpoints["qwen2", True]
    policy = load_policy(directory)
    export_hf(policy, None, tmp_path)
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).train(False)
    assert_same_logits(policy.model, back, hf.config.vocab_size)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    text = "Solve: 3 + 4 = ?\n\nThe answer is 7."
    assert tok.encode(text, add_special_tokens=False) == policy.tokenizer.encode(text)
    chat = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == \
        policy.tokenizer.apply_chat_template(chat)
    again = load_policy(tmp_path)  # and our own loader reads the export
    assert_same_logits(again.model, back, hf.config.vocab_size)


def test_export_of_a_task_tokenizer_policy(tmp_path):
    """A demo-style policy (our model, TaskTokenizer) exports as a checkpoint transformers loads and encodes alike."""
    tokenizer = TaskTokenizer(words=("answer", "check", "back", "no", "yes", "ok"), max_number=99)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, intermediate_size=96,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))
    spread_weights(model)
    export_hf(LocalPolicy(model, tokenizer), tokenizer, tmp_path)
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).train(False)
    assert_same_logits(model, back, tokenizer.vocab_size)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    text = "3 7 25 -> 46\n7*3=21 | 25 21\nanswer 25+(7*3)\n"
    assert tok.encode(text) == tokenizer.encode(text)  # no special tokens added either way
    assert tok.decode(tokenizer.encode(text)) == text
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (tokenizer.bos_id, tokenizer.eos_id,
                                                                      tokenizer.pad_id)
    assert json.loads((tmp_path / "generation_config.json").read_text())["eos_token_id"] == tokenizer.eos_id


# -- GGUF ---------------------------------------------------------------------------------------------------------
def _llama_cpp_order(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order (convert_hf_to_gguf.py's permute): each head's rotary halves interleaved."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path, model, tokenizer) -> None:
    """A float32 GGUF of a transformers Llama, with its byte-level BPE tokenizer, via the `gguf` package's writer."""
    gguf = pytest.importorskip("gguf")
    c = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_dimension_count(c.head_dim)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    tokens = [t for t, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    tokens += [f"[PAD{i}]" for i in range(len(tokens), c.vocab_size)]
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in tokenizer.all_special_tokens else 1 for t in tokens])  # 3 = control
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    w.add_token_merges([" ".join(m) for m in merges])
    w.add_bos_token_id(tokenizer.bos_token_id)
    w.add_eos_token_id(tokenizer.eos_token_id)
    w.add_add_bos_token(True)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(c.num_hidden_layers):
        for hf_name, gguf_name in names.items():
            t = sd[f"model.layers.{i}.{hf_name}.weight"]
            if gguf_name in ("attn_q", "attn_k"):
                t = _llama_cpp_order(t, c.num_attention_heads if gguf_name == "attn_q" else c.num_key_value_heads)
            w.add_tensor(f"blk.{i}.{gguf_name}.weight", np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_round_trip(tmp_path):
    pytest.importorskip("gguf")
    model, tokenizer = tiny_model("llama", seed=3)
    write_gguf(tmp_path / "tiny.gguf", model, tokenizer)
    policy = load_policy(tmp_path / "tiny.gguf")  # the directory has no tokenizer files: the GGUF's own is used
    assert isinstance(policy, LocalPolicy) and policy.model.config.num_key_value_heads == 2
    assert_same_logits(policy.model, model, model.config.vocab_size)
    text = "Natalia sold 48 clips  in April.\n\nThen"
    assert policy.tokenizer.encode(text) == tokenizer.encode(text, add_special_tokens=False)
    assert policy.tokenizer.bos_id == tokenizer.bos_token_id and policy.tokenizer.eos_id == tokenizer.eos_token_id
    assert load_policy(tmp_path).model.config == policy.model.config  # a directory holding one .gguf works too


# -- weight formats, fallbacks, errors ------------------------------------------------------------------------------
def test_sharded_safetensors_and_missing_shard(tmp_path):
    directory = tiny_checkpoint(tmp_path, "llama", max_shard_size="40KB")
    shards = sorted(directory.glob("model-*.safetensors"))
    assert len(shards) > 1 and (directory / "model.safetensors.index.json").is_file()
    hf = transformers.AutoModelForCausalLM.from_pretrained(directory).train(False)
    assert_same_logits(load_policy(directory).model, hf, hf.config.vocab_size)
    shards[-1].unlink()
    with pytest.raises(FileNotFoundError, match=shards[-1].name):
        load_policy(directory)


def test_pytorch_bin_weights(checkpoints, tmp_path):
    directory, hf = checkpoints["mistral", False]
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    assert_same_logits(load_policy(tmp_path).model, hf, hf.config.vocab_size)


def test_other_architectures_fall_back_to_transformers(tmp_path):
    tokenizer = tiny_tokenizer("qwen2")
    config = transformers.GPT2Config(vocab_size=264, n_positions=128, n_embd=32, n_layer=2, n_head=2,
                                     eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    spread_weights(model, seed=1)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    policy = load_policy(tmp_path)
    assert isinstance(policy, TransformersPolicy)
    greedy = policy.generate(PROMPTS, SamplingParams(n=1, temperature=0.0, max_new_tokens=10))
    assert [c.prompt_index for c in greedy] == [0, 1] and all(c.finish_reason in ("eos", "length") for c in greedy)
    ids = policy.encode_prompts(PROMPTS)
    scored = policy.logprobs(ids, [c.token_ids for c in greedy])  # the learner's view agrees with the sampler's
    for c, lp in zip(greedy, scored):
        assert torch.allclose(lp.detach(), torch.tensor(c.logprobs), atol=1e-4)
    sampled = policy.generate(PROMPTS, SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=5))
    again = policy.generate(PROMPTS, SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=5))
    assert [c.token_ids for c in sampled] == [c.token_ids for c in again]
    assert [c.prompt_index for c in sampled] == [0, 0, 0, 1, 1, 1]
    assert policy.ledger.generated_tokens > 0 and policy.ledger.policy_flops > 0


def test_transformers_backend_agrees_with_the_engine(checkpoints):
    """The fallback on a Llama checkpoint: same greedy tokens as the engine, and stop strings end a completion.
    The checkpoint's own generation defaults (penalties, top-k) must not leak into SamplingParams' decoding."""
    directory, _ = checkpoints["llama", False]
    defaults = json.loads((directory / "generation_config.json").read_text())
    defaults.update(repetition_penalty=3.0, no_repeat_ngram_size=1, top_k=2, do_sample=True, temperature=0.1)
    (directory / "generation_config.json").write_text(json.dumps(defaults))
    native, fallback = load_policy(directory), load_policy(directory, backend="transformers")
    assert isinstance(fallback, TransformersPolicy)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    a, b = native.generate(PROMPTS, params), fallback.generate(PROMPTS, params)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    assert np.allclose(a[0].logprobs, b[0].logprobs, atol=1e-4)
    stop = next(ch for ch in a[0].text[2:] if ch.strip())  # a character greedy decoding writes after the start
    stopped = fallback.generate(PROMPTS[:1], SamplingParams(n=1, temperature=0.0, max_new_tokens=12, stop=(stop,)))
    assert stopped[0].finish_reason == "stop" and stopped[0].text.endswith(stop)
    assert a[0].text.startswith(stopped[0].text)


def test_sliding_window_shorter_than_the_context_is_refused(tmp_path):
    ok = tiny_checkpoint(tmp_path / "ok", "mistral", sliding_window=256)  # = max_position_embeddings: never masks
    assert isinstance(load_policy(ok), LocalPolicy)
    short = tiny_checkpoint(tmp_path / "short", "mistral", sliding_window=64)
    with pytest.raises(UnsupportedCheckpoint, match="sliding_window=64.*backend='transformers'"):
        load_policy(short)
    assert isinstance(load_policy(short, backend="transformers"), TransformersPolicy)


def test_rope_scaling_loads_natively_and_through_the_fallback(tmp_path):
    """Llama 3.x scales RoPE frequencies: the project's model reproduces it (more in test_rope_scaling.py), and the
    transformers backend still loads such a checkpoint."""
    rope = {"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    directory = tiny_checkpoint(tmp_path, "llama", rope_parameters=rope)
    native, fallback = load_policy(directory), load_policy(directory, backend="transformers")
    assert isinstance(native, LocalPolicy) and native.model.config.rope_scaling["rope_type"] == "llama3"
    hf = transformers.AutoModelForCausalLM.from_pretrained(directory).train(False)
    assert_same_logits(native.model, hf, hf.config.vocab_size)
    ids, _ = batch(hf.config.vocab_size)
    with torch.no_grad():
        assert torch.equal(fallback.model(ids).logits, hf(ids).logits)


def test_missing_pieces_are_named(checkpoints, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        load_policy(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="missing config.json"):
        load_policy(tmp_path)
    directory, _ = checkpoints["llama", False]
    (tmp_path / "config.json").write_bytes((directory / "config.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        load_policy(tmp_path)
    (tmp_path / "tokenizer.json").write_bytes((directory / "tokenizer.json").read_bytes())
    (tmp_path / "tokenizer_config.json").write_bytes((directory / "tokenizer_config.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="no model weights .*model.safetensors"):
        load_policy(tmp_path)
    with pytest.raises(ValueError, match="backend"):
        load_policy(directory, backend="onnx")
