"""MKL's packed fp32 GEMM against a plain product, on the decode step's shapes. Not a test.

`torch.ops.mkl._mkl_linear` multiplies by a weight packed for one batch size (`_mkl_reorder_linear_weight`, the
format Inductor's CPU freezing uses): at that batch size it skips MKL's per-call packing of the weight; at any other it
falls back to the plain product. Prints ms per product and GFLOP/s for the Qwen2.5-0.5B shape's four products and the
1.12M / 5.64M models' largest, plus the packed weight's size against the weight's; and, on the unpacked weight,
`F.linear(x, w)` (what nn.Linear runs) against `(w @ xᵀ)ᵀ`, the same products with a transposed result
(docs/speed.md).

    python benchmarks/packed_gemm.py
"""

from __future__ import annotations

import time

import torch

SHAPES = {  # name: (rows M, in K, out N)
    "0.5B qkv": (64, 896, 1152), "0.5B gate+up": (64, 896, 9728), "0.5B down": (64, 4864, 896),
    "0.5B lm_head": (64, 896, 151936), "1.12M gate+up": (64, 128, 768), "5.64M gate+up": (64, 256, 1536),
}


def ms_per_call(fn, calls: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e3


@torch.inference_mode()
def main() -> None:
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, (M, K, N) in SHAPES.items():
        x, w = torch.randn(M, K), torch.randn(N, K)  # w in nn.Linear's (out, in) layout
        w_t = w.t().contiguous()  # the engine's fused layout: x @ w_t
        packed = torch.ops.mkl._mkl_reorder_linear_weight(w, M)
        calls = 3 if N > 100_000 else 50
        plain = ms_per_call(lambda: x @ w_t, calls)
        fast = ms_per_call(lambda: torch.ops.mkl._mkl_linear(x, packed, w, None, M), calls)
        linear = ms_per_call(lambda: torch.nn.functional.linear(x, w), calls)
        flipped = ms_per_call(lambda: (w @ x.t()).t(), calls)
        other = torch.randn(M - 1, K)  # another batch size: the packed call falls back to the plain product
        same = torch.equal(torch.ops.mkl._mkl_linear(other, packed, w, None, M), torch.nn.functional.linear(other, w))
        flop = 2 * M * K * N / 1e6
        print(f"{name:>14} {M}x{K}x{N}: plain {plain:8.3f} ms ({flop / plain:4.0f} GFLOP/s), packed {fast:8.3f} ms "
              f"({flop / fast:4.0f}), {plain / fast:.2f}x; packed size {packed.numel() / w.numel():.2f}x the weight; "
              f"at batch {M - 1} it is the plain product: {same}; F.linear {linear:.3f} ms, (w @ xᵀ)ᵀ {flipped:.3f} ms",
              flush=True)


if __name__ == "__main__":
    main()
