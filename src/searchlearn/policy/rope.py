"""Rotary position embeddings (Su et al. 2021, "RoFormer") and the RoPE scalings of Llama-family checkpoints.

Position p rotates the i-th pair of a head's channels by θ_{p,i} = p · f_i with inverse frequencies f_i = base^(-2i/D).
Context-extension schemes change only the f_i (`inv_freq`), named as in Hugging Face's config.json `rope_scaling` /
`rope_parameters` (`rope_type`):

- "default": f_i unchanged.
- "linear" (position interpolation, Chen et al. 2023): positions divided by `factor`, i.e. f_i / factor.
- "llama3" (Meta's Llama 3.1 release): with wavelength λ_i = 2π / f_i and the pretraining context C
  (`original_max_position_embeddings`), high frequencies (λ_i < C / high_freq_factor) are kept, low frequencies
  (λ_i > C / low_freq_factor) are divided by `factor`, and those between are interpolated:
  s = (C / λ_i − low_freq_factor) / (high_freq_factor − low_freq_factor), f_i' = (1 − s) · f_i / factor + s · f_i.

Any other type (yarn, dynamic, longrope, ...) also rescales attention or depends on the sequence length, which the
project's model does not do: `check_rope_scaling` refuses it, naming the type.
"""

from __future__ import annotations

import math

import torch

ROPE_TYPES = ("default", "linear", "llama3")  # the rope_types this module reproduces
REQUIRED = {"linear": ("factor",),
            "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}
IGNORED = ("rope_type", "type", "rope_theta")  # carried elsewhere (rope_theta is LlamaConfig's own field)


def check_rope_scaling(scaling: dict | None, max_position_embeddings: int | None = None) -> dict | None:
    """An HF `rope_scaling` / `rope_parameters` dict in canonical form: None for plain RoPE, else
    {"rope_type": "linear" | "llama3", <that type's parameters>}. Raises ValueError naming an unsupported type or
    parameter. A llama3 dict without `original_max_position_embeddings` takes `max_position_embeddings`, as
    transformers does."""
    if not scaling:
        return None
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise ValueError(f"unsupported RoPE scaling rope_type {kind!r} (supported: {', '.join(ROPE_TYPES)})")
    params = {k: v for k, v in scaling.items() if k not in IGNORED}
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(f"unsupported RoPE partial_rotary_factor {params['partial_rotary_factor']} (only 1.0)")
    if params.get("attention_factor") not in (None, 1.0):
        raise ValueError(f"unsupported RoPE attention_factor {params['attention_factor']} (only 1.0)")
    params.pop("partial_rotary_factor", None)
    params.pop("attention_factor", None)
    if kind == "default":
        if params:
            raise ValueError(f"RoPE rope_type 'default' takes no scaling parameters, got {sorted(params)}")
        return None
    if kind == "llama3" and params.get("original_max_position_embeddings") is None and max_position_embeddings:
        params["original_max_position_embeddings"] = max_position_embeddings
    missing = [k for k in REQUIRED[kind] if params.get(k) is None]
    unknown = sorted(set(params) - set(REQUIRED[kind]))
    if missing or unknown:
        raise ValueError(f"RoPE rope_type {kind!r} needs {list(REQUIRED[kind])}"
                         + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))
    if params["factor"] <= 0:
        raise ValueError(f"RoPE scaling factor must be > 0, got {params['factor']}")
    if kind == "llama3" and not 0 < params["low_freq_factor"] < params["high_freq_factor"]:
        raise ValueError(f"llama3 RoPE needs 0 < low_freq_factor < high_freq_factor, got {params}")
    out = {"rope_type": kind, **{k: float(params[k]) for k in REQUIRED[kind]}}
    if kind == "llama3":
        out["original_max_position_embeddings"] = int(params["original_max_position_embeddings"])
    return out


def inv_freq(head_dim: int, theta: float, scaling: dict | None = None) -> torch.Tensor:
    """Inverse frequencies (D/2,) float32 on the CPU (even under a `torch.device("meta")` context): base^(-2i/D),
    computed as transformers does, then scaled."""
    exponent = torch.arange(0, head_dim, 2, dtype=torch.int64, device="cpu").float() / head_dim
    freq = 1.0 / (theta**exponent)  # (D/2,)
    scaling = check_rope_scaling(scaling)
    if scaling is None:
        return freq
    if scaling["rope_type"] == "linear":
        return freq / scaling["factor"]
    return llama3_inv_freq(freq, scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"],
                           scaling["original_max_position_embeddings"])


def llama3_inv_freq(freq: torch.Tensor, factor: float, low_freq_factor: float, high_freq_factor: float,
                    context: int) -> torch.Tensor:
    """Llama 3.1's piecewise rescaling of inverse frequencies (see the module docstring); `context` = C."""
    wavelength = 2 * math.pi / freq  # (D/2,)
    smooth = (context / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)  # 0 → low, 1 → high
    between = (1 - smooth) * freq / factor + smooth * freq
    low = wavelength > context / low_freq_factor  # long wavelengths: interpolated by the full factor
    high = wavelength < context / high_freq_factor  # short wavelengths: untouched
    return torch.where(low, freq / factor, torch.where(high, freq, between))


def rope_cos_sin(inv_freq: torch.Tensor, position_ids: torch.Tensor, dtype: torch.dtype):
    """RoPE tables for angles θ_{p,i} = p · f_i: (B, T) positions -> 2 × (B, 1, T, D).

    HF rotates as x·cos + rotate_half(x)·sin with rotate_half(x1, x2) = (-x2, x1). Equivalently
    x·cos + roll(x, D/2)·sin_signed where sin_signed = (-sin, sin) over the halves: we return cos and sin_signed.
    """
    freqs = position_ids[:, :, None].float() * inv_freq  # (B, T, D/2)
    cos = torch.cat((freqs.cos(), freqs.cos()), dim=-1)  # (B, T, D)
    sin = torch.cat((-freqs.sin(), freqs.sin()), dim=-1)
    return cos.to(dtype)[:, None], sin.to(dtype)[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, D) queries or keys by their positions' angles."""
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), sin_signed)
