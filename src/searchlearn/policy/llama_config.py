"""The model's hyperparameters, named as in Hugging Face's `LlamaConfig` (config.json in and out)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from searchlearn.policy.rope import check_rope_scaling


@dataclass
class LlamaConfig:
    """Model hyperparameters, named as in Hugging Face's `LlamaConfig` (config.json)."""

    vocab_size: int = 1026  # rows of the embedding / lm_head
    hidden_size: int = 128  # residual stream width D
    intermediate_size: int = 384  # SwiGLU hidden width
    num_hidden_layers: int = 4  # decoder blocks
    num_attention_heads: int = 4  # query heads H
    num_key_value_heads: int | None = None  # key/value heads H_kv (GQA); None = H (multi-head attention)
    max_position_embeddings: int = 2048  # the context length the model is meant for (RoPE itself has no limit)
    rope_theta: float = 10000.0  # RoPE base
    rope_scaling: dict | None = None  # HF's RoPE scaling: None, or {"rope_type": "linear" | "llama3", ...} (rope.py)
    rms_norm_eps: float = 1e-6  # RMSNorm epsilon
    tie_word_embeddings: bool = False  # lm_head shares the embedding matrix
    attention_bias: bool = False  # biases on q/k/v projections (Qwen2-style); o_proj never has one
    head_dim: int | None = None  # per-head width; None = hidden_size // num_attention_heads
    bos_token_id: int | None = None  # carried into config.json for HF tooling
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.num_key_value_heads < 1 or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads {self.num_attention_heads} must be a multiple of "
                             f"num_key_value_heads {self.num_key_value_heads}")
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(f"hidden_size {self.hidden_size} not divisible by heads {self.num_attention_heads}")
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.head_dim < 2 or self.head_dim % 2:
            raise ValueError(f"head_dim must be even (RoPE rotates pairs), got {self.head_dim}")
        if self.rope_theta <= 0 or self.rms_norm_eps <= 0:
            raise ValueError("rope_theta and rms_norm_eps must be > 0")
        self.rope_scaling = check_rope_scaling(self.rope_scaling, self.max_position_embeddings)

    def to_hf_dict(self) -> dict:
        """The config.json form: loadable by transformers 4.x (`rope_theta`, `rope_scaling`) and 5.x
        (`rope_parameters`)."""
        rope = {"rope_type": "default", **(self.rope_scaling or {}), "rope_theta": self.rope_theta}
        return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **asdict(self), "hidden_act": "silu",
                "mlp_bias": False, "attention_dropout": 0.0, "initializer_range": 0.02, "rope_parameters": rope}

    @classmethod
    def from_dict(cls, d: dict) -> LlamaConfig:
        """Read a config.json dict (ours or HF's): HF bookkeeping keys are ignored, unsupported features refused."""
        if d.get("hidden_act", "silu") != "silu" or d.get("mlp_bias", False):
            raise ValueError("only SiLU-gated MLPs without bias are supported")
        rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["rope_scaling"] = rope or None  # checked (unsupported types refused, by name) in __post_init__
        if "rope_theta" in rope:
            kwargs["rope_theta"] = rope["rope_theta"]
        return cls(**kwargs)
