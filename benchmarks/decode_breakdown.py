"""Where a fused decode step's time goes: the whole step against its matrix products alone, its attention over the
cache alone, and the sampling of its tokens. Not a test.

For generation.py's two models at a few (batch, cached positions) points, ms per call, best of 3 × 200 calls on this
machine's threads. The remainder (step − products − attention) is the step's elementwise work: norms, RoPE, SiLU,
softmax, the cache writes, each a separate kernel over the batch (docs/speed.md).

    python benchmarks/decode_breakdown.py
"""

from __future__ import annotations

import time

import torch

from searchlearn.policy.decode import fused_forward, fused_weights
from searchlearn.policy.engine import sample_tokens
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.streams import row_keys, uniforms

SIZES = {  # generation.py's models
    "1.12M": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=384),
    "5.64M": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, intermediate_size=768),
}
VOCAB = 1100


def ms_per_call(fn, calls: int = 200) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls * 1e3)
    return best


@torch.inference_mode()
def breakdown(model, batch: int, cached: int) -> dict[str, float]:
    c, w = model.config, fused_weights(model)
    cache = model.new_cache(batch, cached)  # keys and values the model made (random ones can hold denormals)
    model(torch.randint(4, VOCAB, (batch, cached - 1)), torch.arange(cached - 1).expand(batch, -1), None, cache)
    ks, vs = [k[:, :, :cached] for k in cache.k], [v[:, :, :cached] for v in cache.v]  # per layer (B, H_kv, T, D)
    ids, pos = torch.randint(4, VOCAB, (batch,)), torch.full((batch,), cached - 1)
    x, hidden = torch.randn(batch, c.hidden_size), torch.randn(batch, c.intermediate_size)
    attention_out = torch.randn(batch, c.num_attention_heads * c.head_dim)
    q = ks[0][:, :, -2:-1].expand(-1, -1, c.num_attention_heads // c.num_key_value_heads, -1)  # (B, H_kv, g, D)
    logits, keys = torch.randn(batch, VOCAB), row_keys([[1]] * batch, 1, 0)

    def products():
        for layer in w.layers:
            x @ layer.w_qkv, attention_out @ layer.w_o, x @ layer.w_gate_up, hidden @ layer.w_down
        model.lm_head.forward(x)

    def attention():
        for k, v in zip(ks, vs):
            (q @ k.transpose(-1, -2)).softmax(-1) @ v

    return {"step": ms_per_call(lambda: fused_forward(model, w, ids, pos, ks, vs, cached - 1, None)),
            "products": ms_per_call(products), "attention": ms_per_call(attention),
            "sampling": ms_per_call(lambda: sample_tokens(logits, 1.0, 1.0, uniforms(keys, 3)))}


def main() -> None:
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; ms per call")
    print(f"{'model':>6} {'batch':>5} {'cached':>6} {'step':>7} {'products':>8} {'attention':>9} {'the rest':>8} "
          f"{'sampling':>8}")
    for name, size in SIZES.items():
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, **size)).eval()
        for batch, cached in ((1, 80), (16, 80), (64, 80), (64, 144)):
            t = breakdown(model, batch, cached)
            rest = t["step"] - t["products"] - t["attention"]
            print(f"{name:>6} {batch:5d} {cached:6d} {t['step']:7.3f} {t['products']:8.3f} {t['attention']:9.3f} "
                  f"{rest:8.3f} {t['sampling']:8.3f}", flush=True)


if __name__ == "__main__":
    main()
