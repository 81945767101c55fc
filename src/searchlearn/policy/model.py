"""A Llama-style decoder-only transformer whose parameter names are Hugging Face's `LlamaForCausalLM` names.

Architecture (Touvron et al. 2023, "LLaMA"): pre-norm blocks with RMSNorm (Zhang & Sennrich 2019), rotary position
embeddings (Su et al. 2021, "RoFormer", in HF's rotate_half layout, with linear or Llama 3 frequency scaling: rope.py),
a SwiGLU MLP (Shazeer 2020) and grouped-query attention (Ainslie et al. 2023, "GQA"). Because the names and the maths
match HF's, `save_pretrained` writes a directory that `transformers.LlamaForCausalLM.from_pretrained` loads, and
`from_pretrained` reads HF Llama checkpoints back. The KV cache of incremental decoding is in kv_cache.py.
Optional q/k/v biases (`attention_bias`, as in Qwen2) let a loader map Qwen2-style weights onto the same module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from searchlearn.policy.kv_cache import KVCache
from searchlearn.policy.llama_config import LlamaConfig
from searchlearn.policy.rope import apply_rope, inv_freq, rope_cos_sin

__all__ = ["LlamaConfig", "LlamaForCausalLM", "sequence_logprobs", "CONFIG_NAME", "WEIGHTS_NAME"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class RMSNorm(nn.Module):
    """y = w · x / sqrt(mean(x²) + ε), computed in float32 (Zhang & Sennrich 2019)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:  # one fused kernel; the same maths
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean mask (True = may attend) -> additive bias: 0 where allowed, the dtype's minimum elsewhere."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, torch.finfo(dtype).min)


class Attention(nn.Module):
    """Grouped-query attention (Ainslie et al. 2023): H query heads share H_kv key/value heads."""

    def __init__(self, config: LlamaConfig, layer: int):
        super().__init__()
        self.layer, self.h, self.h_kv = layer, config.num_attention_heads, config.num_key_value_heads
        self.d = config.head_dim
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.h * self.d, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, self.h_kv * self.d, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, self.h_kv * self.d, bias=bias)
        self.o_proj = nn.Linear(self.h * self.d, config.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask, is_causal: bool, cache: KVCache | None) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_proj.forward(x).view(B, T, self.h, self.d).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj.forward(x).view(B, T, self.h_kv, self.d).transpose(1, 2)  # (B, H_kv, T, D)
        v = self.v_proj.forward(x).view(B, T, self.h_kv, self.d).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, H_kv, L, D)
        if T == 1 and B >= 16:  # batched decode: two grouped matmuls, (B, H_kv, g, D) x (B, H_kv, D, L), read each
            # K/V head once for its g query heads; on CPU this beats the SDPA kernel from batch ~16 up (1.3-2x).
            scores = torch.matmul(q.view(B, self.h_kv, -1, self.d), k.transpose(-1, -2)) * self.d**-0.5
            if mask is not None:
                scores = scores + mask  # (B, 1, 1, L) additive
            out = torch.matmul(scores.softmax(-1), v).view(B, self.h, 1, self.d)  # (B, H_kv, g, D) -> (B, H, 1, D)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                                 enable_gqa=self.h != self.h_kv)  # (B, H, T, D)
        return self.o_proj.forward(out.transpose(1, 2).reshape(B, T, self.h * self.d))


class MLP(nn.Module):
    """SwiGLU (Shazeer 2020): down(silu(gate(x)) · up(x))."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj.forward(F.silu(self.gate_proj.forward(x)) * self.up_proj.forward(x))


class DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: LlamaConfig, layer: int):
        super().__init__()
        self.self_attn = Attention(config, layer)
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, cos, sin, mask, is_causal, cache):
        x = x + self.self_attn.forward(self.input_layernorm.forward(x), cos, sin, mask, is_causal, cache)
        return x + self.mlp.forward(self.post_attention_layernorm.forward(x))


class LlamaModel(nn.Module):
    """Embedding, decoder stack, final norm: HF's `model.` submodule."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    """Decoder + lm_head: forward(input_ids (B, T), ...) -> logits (B, T, V); with a KVCache, incremental decoding."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.reset_rope()
        if self.lm_head.weight.device.type != "meta":  # HF's init: N(0, initializer_range = 0.02), zero biases
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.tie_weights()

    def reset_rope(self) -> None:
        """Build the RoPE inverse frequencies base^(-2i/D), scaled as `rope_scaling` says, exactly as HF does
        (rope.py). A plain float32 attribute, not a buffer, so that `model.to(bfloat16)` cannot round it; forward
        moves it to the input's device when needed."""
        c = self.config
        self.inv_freq = inv_freq(c.head_dim, c.rope_theta, c.rope_scaling)  # (D/2,)

    def tie_weights(self) -> None:
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Distinct parameters (a tied matrix counts once); without the embedding and untied lm_head if asked."""
        params = {id(p): p for p in self.parameters()}
        if exclude_embeddings:
            params.pop(id(self.model.embed_tokens.weight), None)
            params.pop(id(self.lm_head.weight), None)
        return sum(p.numel() for p in params.values())

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        logits_to_keep: int = 0,
    ) -> torch.Tensor:
        """Logits (B, T, V) of the next token at every position (only the last `logits_to_keep` if > 0).

        attention_mask (B, T): 1 = real token, 0 = padding (left or right). Without position_ids, positions count real
        tokens (HF's `cumsum(mask) - 1`), across the cache when one is given. A cache receives this call's keys/values
        and attention runs over everything it holds.
        """
        B, T = input_ids.shape
        start = cache.length if cache is not None else 0
        L = start + T
        if cache is not None:
            key_mask, padded = cache.write_mask(attention_mask, T), cache.padded  # (B, L)
        else:
            key_mask = attention_mask.bool() if attention_mask is not None else None
            padded = key_mask is not None and not bool(key_mask.all())
        if position_ids is None:  # count real tokens: HF's cumsum(mask) - 1
            position_ids = (torch.arange(start, L, device=input_ids.device).expand(B, T) if key_mask is None
                            else (key_mask.long().cumsum(-1)[:, start:] - 1).clamp_min(0))
        if self.inv_freq.device != input_ids.device:  # a plain attribute: `.to(device)` does not move it
            self.inv_freq = self.inv_freq.to(input_ids.device)
        cos, sin = rope_cos_sin(self.inv_freq, position_ids, self.lm_head.weight.dtype)  # (B, 1, T, D)

        mask, is_causal = None, False  # mask: additive (B or 1, 1, T, L)
        if T == 1 and attention_mask is None:  # decoding a real token: it may see every real key
            if padded:
                mask = additive_mask(key_mask, cos.dtype)[:, None, None, :]
        elif padded or start > 0:
            q_idx = torch.arange(start, L, device=input_ids.device)[:, None]  # (T, 1)
            k_idx = torch.arange(L, device=input_ids.device)[None, :]  # (1, L)
            allowed = (k_idx <= q_idx)[None, None]  # (1, 1, T, L) causal
            if padded:  # hide padding keys, but let every query see itself so no row is fully masked
                allowed = allowed & (key_mask[:, None, None, :] | (k_idx == q_idx))  # (B, 1, T, L)
            mask = additive_mask(allowed, cos.dtype)
        else:
            is_causal = True

        # Submodules are run through `.forward`, skipping nn.Module.__call__ (~2 µs each): small-batch decoding is
        # bound by per-op overhead, not FLOPs. (Module hooks therefore do not fire inside this model.)
        x = self.model.embed_tokens.forward(input_ids)  # (B, T, D)
        for layer in self.model.layers:
            x = layer.forward(x, cos, sin, mask, is_causal, cache)
        if cache is not None:
            cache.length = L
        x = self.model.norm.forward(x[:, -logits_to_keep:] if logits_to_keep else x)
        return self.lm_head.forward(x)  # (B, T, V)

    def new_cache(self, batch_size: int, max_length: int) -> KVCache:
        """An empty cache for `batch_size` rows of up to `max_length` positions, in the weights' dtype and device."""
        w = self.lm_head.weight
        return KVCache(self.config, batch_size, max_length, dtype=w.dtype, device=w.device)

    # -- persistence: HF-compatible directory -----------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """Write `model.safetensors` and `config.json` atomically. A tied lm_head is stored once (as the embedding)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        dtype = self.lm_head.weight.dtype
        if self.config.tie_word_embeddings:
            state.pop("lm_head.weight")
        if self.config.attention_bias:  # HF Llama's attention_bias also adds an o_proj bias: store ours as zeros
            for i in range(self.config.num_hidden_layers):
                state[f"model.layers.{i}.self_attn.o_proj.bias"] = torch.zeros(self.config.hidden_size, dtype=dtype)
        _atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
        config = self.config.to_hf_dict()
        config["torch_dtype"] = config["dtype"] = str(dtype).removeprefix("torch.")  # transformers 4.x / 5.x names
        _atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2)))

    @classmethod
    def from_pretrained(cls, directory: str | Path, dtype: torch.dtype | None = None, device="cpu") -> LlamaForCausalLM:
        """Load a directory written by `save_pretrained` or by HF (Llama, single-file safetensors)."""
        config = LlamaConfig.from_dict(json.loads((Path(directory) / CONFIG_NAME).read_text()))
        return cls.from_state_dict(config, load_file(str(Path(directory) / WEIGHTS_NAME), device=str(device)), dtype)

    @classmethod
    def from_state_dict(cls, config: LlamaConfig, state: dict[str, torch.Tensor], dtype: torch.dtype | None = None
                        ) -> LlamaForCausalLM:
        """The model holding `state` (HF parameter names); strict: every parameter filled, nothing left over."""
        state = {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}
        for key in [k for k in state if k.endswith("o_proj.bias")]:  # HF Llama's attention_bias also biases o_proj
            if state.pop(key).any():
                raise ValueError(f"{key} is non-zero: o_proj biases are not supported")
        if config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        with torch.device("meta"):
            model = cls(config)
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
        if missing or unexpected:
            raise ValueError(f"checkpoint does not fit a {config.num_hidden_layers}-layer model: "
                             f"missing {missing[:8]}, unexpected {unexpected[:8]}")
        model.tie_weights()
        return model.to(dtype=dtype) if dtype is not None else model


def sequence_logprobs(model: LlamaForCausalLM, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """log π(x_t | x_<t) for t = 1..T-1, (B, T) -> (B, T-1); positions whose target is padding are 0."""
    logits = model(input_ids, attention_mask=attention_mask)[:, :-1].float()  # (B, T-1, V)
    logp = logits.gather(-1, input_ids[:, 1:, None]).squeeze(-1) - logits.logsumexp(-1)  # (B, T-1)
    return logp * attention_mask[:, 1:].to(logp.dtype)


def _atomic_write(path: Path, write) -> None:
    """write(tmp_path), fsync, then os.replace onto `path`: readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
