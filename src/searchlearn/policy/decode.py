"""One decoding step of a whole batch, with fused projections: the engine's inner loop.

Decoding on a CPU is bound by per-operation cost, not FLOPs: at batch 64 a 1M-parameter model spends most of a step
launching small kernels. This step computes exactly what `LlamaForCausalLM.forward` computes for one new token per row
(same maths, same parameters), in fewer and larger operations:
  - Q, K and V come from one matrix product with [W_q; W_k; W_v] (and gate and up from one with [W_gate; W_up]), the
    fusion vLLM's `QKVParallelLinear` / `MergedColumnParallelLinear` do;
  - queries and keys are rotated together (RoPE, Su et al. 2021) and the 1/√D scale is folded into the queries;
  - attention is two grouped matrix products over each row's cached keys (GQA, Ainslie et al. 2023), a K/V head read
    once for the g query heads that share it;
  - residual additions ride on `addmm`.
The fused matrices are built once per version of the weights (`fused_weights`), so a learner's in-place update between
two `generate` calls is seen by the next one.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from searchlearn.policy.kv_cache import KVCache
from searchlearn.policy.rope import rope_cos_sin


@dataclass(frozen=True)
class FusedLayer:
    norm_in: torch.nn.Module  # the input RMSNorm
    w_qkv: torch.Tensor  # (C, (H + 2·H_kv)·D) = [W_q; W_k; W_v]ᵀ
    b_qkv: torch.Tensor | None  # ((H + 2·H_kv)·D,) q/k/v biases (Qwen2), or None
    w_o: torch.Tensor  # (H·D, C) = W_oᵀ
    norm_post: torch.nn.Module  # the post-attention RMSNorm
    w_gate_up: torch.Tensor  # (C, 2·I) = [W_gate; W_up]ᵀ
    w_down: torch.Tensor  # (I, C) = W_downᵀ


@dataclass(frozen=True)
class Fused:
    key: tuple  # the parameters' (data_ptr, _version) when built
    layers: tuple[FusedLayer, ...]


_FUSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its Fused (kept off the module, so that
#   copying or pickling a model does not carry it)


def _key(model: torch.nn.Module) -> tuple:
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def fused_weights(model) -> Fused:
    """The model's decoding matrices, rebuilt only when a parameter changed (in place or replaced) since the last
    call. Fused copies cost the model's size in memory once more."""
    key = _key(model)
    cached = _FUSED.get(model)
    if cached is not None and cached.key == key:
        return cached
    layers = []
    with torch.no_grad():
        for layer in model.model.layers:
            a, m = layer.self_attn, layer.mlp
            bias = None if a.q_proj.bias is None else torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])
            layers.append(FusedLayer(
                norm_in=layer.input_layernorm,
                w_qkv=torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).t().contiguous(),
                b_qkv=bias,
                w_o=a.o_proj.weight.t().contiguous(),
                norm_post=layer.post_attention_layernorm,
                w_gate_up=torch.cat([m.gate_proj.weight, m.up_proj.weight]).t().contiguous(),
                w_down=m.down_proj.weight.t().contiguous(),
            ))
    _FUSED[model] = Fused(key, tuple(layers))
    return _FUSED[model]


def decode_step(model, token_ids: torch.Tensor, positions: torch.Tensor, cache: KVCache,
                weights: Fused | None = None) -> torch.Tensor:
    """Logits (B, V) of the token after `token_ids` (B,), which sit at `positions` (B,) and are appended to `cache`
    (every row's new key is real). Equal to `model(token_ids[:, None], positions[:, None], cache=cache)[:, -1]` up to
    float rounding. `weights`: `fused_weights(model)`, fetched once per generate call by the engine (None: here)."""
    t = cache.length
    key_mask = cache.write_mask(None, 1)  # (B, t + 1)
    ks, vs = [k[:, :, : t + 1] for k in cache.k], [v[:, :, : t + 1] for v in cache.v]  # (B, H_kv, t + 1, D)
    logits = fused_forward(model, weights or fused_weights(model), token_ids, positions, ks, vs, t,
                           key_mask if cache.padded else None)
    cache.length = t + 1
    return logits


def fused_forward(model, weights: Fused, token_ids: torch.Tensor, positions: torch.Tensor, ks: list[torch.Tensor],
                  vs: list[torch.Tensor], at: int | torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """The step's maths on explicit buffers: logits (B, V) of the token after `token_ids` (B,) at `positions` (B,).

    `ks[i]`, `vs[i]`: layer i's (B, H_kv, L, D) keys and values; the new ones are written at slot `at` (an int, or a
    (1,) long tensor: a static graph's input, static_decode.py) and attention reads all L slots but those `key_mask`
    (B, L) marks False (None: every slot is real). Nothing here depends on a Python value of the data, so the same
    call can be captured in a CUDA graph.
    """
    c = model.config
    B, H, H_kv, D = token_ids.shape[0], c.num_attention_heads, c.num_key_value_heads, c.head_dim
    g = H // H_kv
    if model.inv_freq.device != token_ids.device:
        model.inv_freq = model.inv_freq.to(token_ids.device)
    cos, sin = rope_cos_sin(model.inv_freq, positions[:, None], model.lm_head.weight.dtype)  # (B, 1, 1, D)
    cos, sin = cos[:, 0], sin[:, 0]  # (B, 1, D): broadcast over the H + H_kv rotated heads
    masked = None if key_mask is None else ~key_mask[:, None, None, :]  # (B, 1, 1, L): True = not attended
    scale, low = D**-0.5, torch.finfo(model.lm_head.weight.dtype).min
    x = model.model.embed_tokens.weight[token_ids]  # (B, C)
    for i, w in enumerate(weights.layers):
        h = w.norm_in.forward(x)
        qkv = h @ w.w_qkv if w.b_qkv is None else torch.addmm(w.b_qkv, h, w.w_qkv)  # (B, (H + 2 H_kv) D)
        qk = qkv[:, : (H + H_kv) * D].view(B, H + H_kv, D)
        qk = torch.addcmul(qk * cos, qk.roll(D // 2, dims=-1), sin)  # RoPE on queries and keys at once
        q = qk[:, :H].view(B, H_kv, g, D) * scale  # (B, H_kv, g, D)
        k_new, v_new = qk[:, H:], qkv[:, (H + H_kv) * D :].view(B, H_kv, D)  # (B, H_kv, D)
        if isinstance(at, int):
            ks[i][:, :, at], vs[i][:, :, at] = k_new, v_new
        else:
            ks[i].index_copy_(2, at, k_new[:, :, None])
            vs[i].index_copy_(2, at, v_new[:, :, None])
        scores = q @ ks[i].transpose(-1, -2)  # (B, H_kv, g, L)
        if masked is not None:  # a fill, not an additive bias: an unwritten slot's score is replaced whatever it is
            scores = scores.masked_fill(masked, low)
        o = (scores.softmax(-1) @ vs[i]).view(B, H * D)  # (B, H_kv, g, D) -> (B, H·D), heads in q_proj's order
        x = torch.addmm(x, o, w.w_o)
        gate_up = w.norm_post.forward(x) @ w.w_gate_up  # (B, 2I)
        I = gate_up.shape[1] // 2
        x = torch.addmm(x, F.silu(gate_up[:, :I]) * gate_up[:, I:], w.w_down)
    return model.lm_head.forward(model.model.norm.forward(x))  # (B, V)
