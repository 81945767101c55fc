"""RoPE scaling (rope.py): Llama 3.x ("llama3") and position-interpolation ("linear") checkpoints load into the
project's model with transformers' logits at positions past the pretraining context, survive our save and export, and
other rope_types are refused by name with the way out."""

from __future__ import annotations

import json
import math

import pytest
import torch
import transformers
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from searchlearn.policy.hf import UnsupportedCheckpoint, export_hf, load_policy
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.rope import check_rope_scaling, inv_freq
from searchlearn.policy.tiny import tiny_checkpoint
from searchlearn.policy.transformers_policy import TransformersPolicy

TOL = 1e-4
ORIGINAL = 16  # original_max_position_embeddings of the tiny configs: the 40-token sequence runs far past it
LENGTH = 40
# head_dim 16, theta 500: wavelengths 2π·500^(2i/16) = 6.3, 13.6, 29, 65, ... With C = 16, low 0.5, high 2 the llama3
# rule keeps i = 0 (λ < C/high = 8), interpolates i = 1, 2 (8 ≤ λ ≤ C/low = 32), divides the rest by the factor.
LLAMA3 = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 0.5, "high_freq_factor": 2.0,
          "original_max_position_embeddings": ORIGINAL}
LINEAR = {"rope_type": "linear", "factor": 2.5}
SCALINGS = {"llama3": LLAMA3, "linear": LINEAR}
transformers.logging.set_verbosity_error()


def ids_and_mask(vocab: int, seed: int = 0):
    """Two rows of LENGTH tokens, the first left-padded by 5: ids (2, 40), mask (2, 40)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (2, LENGTH), generator=g)
    mask = torch.ones(2, LENGTH, dtype=torch.long)
    mask[0, :5] = 0
    return ids, mask


@pytest.fixture(scope="module", params=sorted(SCALINGS))
def scaled(request, tmp_path_factory):
    """(rope_type, checkpoint directory, transformers model loaded from it)."""
    directory = tmp_path_factory.mktemp(request.param)
    tiny_checkpoint(directory, "llama", rope_scaling=dict(SCALINGS[request.param]), max_position_embeddings=64)
    hf = transformers.AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager").train(False)
    assert hf.config.rope_scaling["rope_type"] == request.param  # transformers itself applies the scaling
    return request.param, directory, hf


def test_scaled_checkpoint_loads_natively_with_transformers_logits(scaled):
    kind, directory, hf = scaled
    policy = load_policy(directory)
    assert isinstance(policy, LocalPolicy) and policy.model.config.rope_scaling["rope_type"] == kind
    ids, mask = ids_and_mask(hf.config.vocab_size)
    with torch.no_grad():
        ref = hf(ids).logits
        ours = policy.model(ids)
        assert (ours - ref).abs().max() <= TOL  # every position, ORIGINAL..39 included
        padded = (policy.model(ids, attention_mask=mask) - hf(ids, attention_mask=mask).logits).abs()
        assert padded[mask.bool()].max() <= TOL
        unscaled = LlamaForCausalLM(LlamaConfig.from_dict({**json.loads((directory / "config.json").read_text()),
                                                           "rope_parameters": None, "rope_scaling": None}))
        unscaled.load_state_dict(policy.model.state_dict())
        assert (unscaled(ids) - ref)[:, ORIGINAL:].abs().max() > 1e-2  # the scaling matters: the test can fail


def test_engine_greedy_matches_transformers_past_the_original_context(scaled):
    """The KV-cache engine decodes 30 tokens after a 20-token prompt (positions up to 49 > 16) as transformers does."""
    _, directory, hf = scaled
    policy = load_policy(directory)
    prompt = ids_and_mask(hf.config.vocab_size, seed=1)[0][1, :20].tolist()
    out = policy.engine.generate([prompt], _greedy(30))[0]
    ref = hf.generate(torch.tensor([prompt]), max_new_tokens=30, do_sample=False, top_k=None, top_p=None,
                      eos_token_id=list(policy.tokenizer.eos_ids), pad_token_id=policy.tokenizer.pad_id)
    ref = [t for t in ref[0, len(prompt):].tolist() if t not in policy.tokenizer.eos_ids]
    assert out.token_ids == ref[: len(out.token_ids)] and len(out.token_ids) > ORIGINAL


def _greedy(n: int):
    from searchlearn.types import SamplingParams

    return SamplingParams(n=1, temperature=0.0, max_new_tokens=n)


def test_scaled_model_saves_and_exports_for_transformers(scaled, tmp_path):
    kind, directory, hf = scaled
    policy = load_policy(directory)
    policy.model.save_pretrained(tmp_path / "ours")  # our own checkpoint format keeps the scaling
    again = LlamaForCausalLM.from_pretrained(tmp_path / "ours")
    assert again.config == policy.model.config and torch.equal(again.inv_freq, policy.model.inv_freq)
    export_hf(policy, None, tmp_path / "export")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "export",
                                                             attn_implementation="eager").train(False)
    assert back.config.rope_parameters["rope_type"] == kind
    ids, _ = ids_and_mask(hf.config.vocab_size, seed=2)
    with torch.no_grad():
        assert (back(ids).logits - policy.model(ids)).abs().max() <= TOL


@pytest.mark.parametrize("kind", sorted(SCALINGS))
def test_inv_freq_equals_transformers(kind):
    """Our inverse frequencies equal transformers' for the tiny config and for Llama 3.1-8B's real RoPE settings."""
    real = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}
    for head_dim, theta, scaling in ((16, 500.0, SCALINGS[kind]), (128, 500000.0, real if kind == "llama3" else
                                                                    {"rope_type": "linear", "factor": 4.0})):
        config = transformers.LlamaConfig(hidden_size=4 * head_dim, num_attention_heads=4, rope_theta=theta,
                                          rope_scaling=dict(scaling), max_position_embeddings=131072)
        ref, attention_factor = ROPE_INIT_FUNCTIONS[kind](config, "cpu")
        ours = inv_freq(head_dim, theta, scaling)
        assert attention_factor == 1.0 and torch.allclose(ours, ref, rtol=1e-6, atol=0)
    plain = inv_freq(16, 500.0)
    ours = inv_freq(16, 500.0, LLAMA3)
    wavelength = 2 * math.pi / plain
    if kind == "llama3":  # the tiny config exercises all three branches of the rule
        assert ours[0] == plain[0] and wavelength[0] < ORIGINAL / 2.0
        assert ((ours[1:3] < plain[1:3]) & (ours[1:3] > plain[1:3] / 4)).all()
        assert torch.allclose(ours[3:], plain[3:] / 4)


def test_config_round_trip_and_unsupported_types(tmp_path):
    config = LlamaConfig(vocab_size=50, hidden_size=32, num_attention_heads=4, rope_scaling={**LLAMA3, "type": "x"})
    assert config.rope_scaling == LLAMA3  # canonical form: rope_type + the type's parameters
    assert LlamaConfig.from_dict(config.to_hf_dict()) == config
    assert transformers.LlamaConfig.from_dict(config.to_hf_dict()).rope_parameters["factor"] == 4.0
    assert LlamaConfig(rope_scaling={"rope_type": "default"}).rope_scaling is None
    no_original = check_rope_scaling({k: v for k, v in LLAMA3.items() if k != "original_max_position_embeddings"}, 99)
    assert no_original["original_max_position_embeddings"] == 99  # as transformers: max_position_embeddings
    for bad, match in (({"rope_type": "yarn", "factor": 4.0}, "rope_type 'yarn'"),
                       ({"rope_type": "dynamic", "factor": 2.0}, "rope_type 'dynamic'"),
                       ({"rope_type": "linear"}, "missing \\['factor'\\]"),
                       ({**LINEAR, "beta_fast": 32}, "unknown \\['beta_fast'\\]"),
                       ({**LLAMA3, "low_freq_factor": 4.0}, "low_freq_factor < high_freq_factor")):
        with pytest.raises(ValueError, match=match):
            LlamaConfig(rope_scaling=bad)


@pytest.mark.parametrize("kind", ["yarn", "dynamic"])
def test_other_rope_types_are_refused_by_name_with_the_way_out(tmp_path, kind):
    rope = {"rope_type": kind, "factor": 4.0, "original_max_position_embeddings": ORIGINAL}
    directory = tiny_checkpoint(tmp_path, "llama", rope_scaling=rope, max_position_embeddings=64)
    with pytest.raises(UnsupportedCheckpoint, match=f"rope_type '{kind}'.*backend='transformers'"):
        load_policy(directory)
    assert isinstance(load_policy(directory, backend="transformers"), TransformersPolicy)


def test_qwen2_with_null_rope_scaling(tmp_path):
    directory = tiny_checkpoint(tmp_path, "qwen2")
    config = json.loads((directory / "config.json").read_text())
    config.update(rope_scaling=None, rope_theta=500.0)  # as many Qwen2 hub configs write it
    config.pop("rope_parameters", None)
    (directory / "config.json").write_text(json.dumps(config))
    policy = load_policy(directory)
    assert isinstance(policy, LocalPolicy) and policy.model.config.rope_scaling is None
    assert policy.model.config.rope_theta == 500.0
    assert LlamaConfig.from_dict(config).rope_scaling is None  # the raw JSON too
