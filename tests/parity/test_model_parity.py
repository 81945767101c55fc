"""Our Llama decoder equals transformers' LlamaForCausalLM on the same weights, in both directions of the checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from searchlearn.policy.engine import Engine
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM, sequence_logprobs
from searchlearn.policy.tiny import spread_weights
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.types import SamplingParams

TOK = TaskTokenizer(words=("answer", "check", "back", "no", "yes", "ok"), max_number=99)
TOL = 1e-4
transformers.logging.set_verbosity_error()


def hf_model(tie: bool, kv_heads: int, seed: int = 0) -> transformers.LlamaForCausalLM:
    config = transformers.LlamaConfig(
        vocab_size=TOK.vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=kv_heads, tie_word_embeddings=tie, rope_theta=500.0, max_position_embeddings=256,
        bos_token_id=TOK.bos_id, eos_token_id=TOK.eos_id, pad_token_id=TOK.pad_id,
    )
    config._attn_implementation = "eager"
    model = transformers.LlamaForCausalLM(config).eval()
    spread_weights(model, seed)
    return model


def batch(seed: int = 0):
    """Three left-padded rows of unequal lengths: ids (3, 13), mask (3, 13)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, TOK.vocab_size, (3, 13), generator=g)
    mask = torch.ones(3, 13, dtype=torch.long)
    mask[0, :5], mask[1, :2] = 0, 0
    return ids.masked_fill(mask == 0, TOK.pad_id), mask


CASES = [(False, 4), (True, 4), (False, 2), (True, 1)]  # (tied embeddings, key/value heads): MHA, GQA, MQA


@pytest.mark.parametrize("tie,kv_heads", CASES)
def test_hf_checkpoint_loads_into_ours(tmp_path, tie, kv_heads):
    hf = hf_model(tie, kv_heads)
    hf.save_pretrained(tmp_path)
    ours = LlamaForCausalLM.from_pretrained(tmp_path)
    assert ours.config.tie_word_embeddings == tie and ours.config.num_key_value_heads == kv_heads
    assert (ours.lm_head.weight is ours.model.embed_tokens.weight) == tie
    assert ours.num_parameters() == hf.num_parameters()
    ids, mask = batch()
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max() <= TOL
        diff = (ours(ids, attention_mask=mask) - hf(ids, attention_mask=mask).logits).abs()
        assert diff[mask.bool()].max() <= TOL  # left padding: compare the real positions


@pytest.mark.parametrize("tie,kv_heads", CASES)
def test_our_checkpoint_loads_into_hf(tmp_path, tie, kv_heads):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=TOK.vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=kv_heads, tie_word_embeddings=tie, rope_theta=500.0,
    )
    ours = LlamaForCausalLM(config)
    spread_weights(ours, seed=1)
    ours.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]  # no temp files left
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    ids, mask = batch(seed=1)
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max() <= TOL
        diff = (ours(ids, attention_mask=mask) - hf(ids, attention_mask=mask).logits).abs()
        assert diff[mask.bool()].max() <= TOL
    again = LlamaForCausalLM.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), again.state_dict().values()))


def test_attention_bias_round_trip(tmp_path):
    """q/k/v biases (Qwen2-style) survive our checkpoint and load into HF Llama (whose o_proj bias we store as 0)."""
    config = LlamaConfig(vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, attention_bias=True)
    ours = LlamaForCausalLM(config)
    spread_weights(ours, seed=2)
    assert ours.model.layers[0].self_attn.q_proj.bias is not None and ours.model.layers[0].self_attn.o_proj.bias is None
    ours.save_pretrained(tmp_path)
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    again = LlamaForCausalLM.from_pretrained(tmp_path)
    ids, _ = batch(seed=2)
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max() <= TOL
        assert torch.equal(ours(ids), again(ids))


def test_greedy_generation_matches_hf(tmp_path):
    hf = hf_model(tie=False, kv_heads=2, seed=3)
    hf.save_pretrained(tmp_path)
    engine = Engine(LlamaForCausalLM.from_pretrained(tmp_path), TOK)
    prompts = TOK.encode_batch(["12+7=", "check 3*4=5", "no"])
    ours = engine.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=16))
    for prompt, completion in zip(prompts, ours):  # HF one prompt at a time (no padding): the plain reference
        out = hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=16, pad_token_id=TOK.pad_id,
                          eos_token_id=TOK.eos_id)[0, len(prompt):].tolist()
        expected = out[: out.index(TOK.eos_id)] if TOK.eos_id in out else out
        assert completion.token_ids == expected
        assert completion.finish_reason == ("eos" if TOK.eos_id in out else "length")


def test_config_round_trip_and_validation(tmp_path):
    config = LlamaConfig(vocab_size=50, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, eos_token_id=2)
    assert config.head_dim == 8 and LlamaConfig.from_dict(config.to_hf_dict()) == config
    assert transformers.LlamaConfig.from_dict(config.to_hf_dict()).num_key_value_heads == 2
    hf_style = {"model_type": "llama", "vocab_size": 50, "hidden_size": 32, "num_attention_heads": 4,
                "rope_parameters": {"rope_type": "default", "rope_theta": 123.0}, "transformers_version": "5.0"}
    assert LlamaConfig.from_dict(hf_style).rope_theta == 123.0
    with pytest.raises(ValueError, match="multiple"):
        LlamaConfig(num_attention_heads=4, num_key_value_heads=3)
    with pytest.raises(ValueError, match="rope"):
        LlamaConfig.from_dict({**hf_style, "rope_parameters": {"rope_type": "yarn", "factor": 2.0}})
    model = LlamaForCausalLM(config)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


def test_num_parameters_and_sequence_logprobs():
    config = LlamaConfig(vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    spread_weights(model)
    embed = TOK.vocab_size * 32
    assert model.num_parameters() - model.num_parameters(exclude_embeddings=True) == embed  # tied: counted once
    ids, mask = batch(seed=4)
    logp = sequence_logprobs(model, ids, mask)  # (3, 12)
    full = torch.log_softmax(model(ids, attention_mask=mask), -1)[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
    assert logp.shape == (3, 12)
    assert torch.allclose(logp, full * mask[:, 1:], atol=1e-5)
    assert (logp[mask[:, 1:] == 0] == 0).all()
