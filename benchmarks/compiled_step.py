"""One static-shape decode step, eager against `torch.compile`d (Inductor), on this machine's CPU. Not a test.

The step is `StaticDecoder`'s (static_decode.py: the shape a CUDA graph records), on the 1.12M model of
generation.py, at a few batches, 80 cached positions. Prints the compile time and ms per step, best of 3 × 200 steps,
so that the choice not to compile the CPU path can be re-checked on another machine or torch (docs/speed.md).

    python benchmarks/compiled_step.py [--batches 1 16 64]

Its model sizes and timer are decode_breakdown.py's (imported as a sibling: run it as a script, as above).
"""

from __future__ import annotations

import argparse
import time

import torch

from searchlearn.policy.decode import fused_weights
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.static_decode import StaticDecoder

from decode_breakdown import SIZES, VOCAB, ms_per_call  # the neighbouring benchmark (benchmarks/ is on the path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--cached", type=int, default=80, help="filled cache positions (the length bucket is 128)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, **SIZES["1.12M"])).eval()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, 1.12M model, {args.cached} cached positions")
    for batch in args.batches:
        measure(model, batch, args.cached)


@torch.inference_mode()
def measure(model, batch: int, cached: int) -> None:
    """Print one batch's eager and compiled ms per step (and check that they agree)."""
    cache = model.new_cache(batch, 256)
    prompt = torch.randint(4, VOCAB, (batch, cached))
    model(prompt, torch.arange(cached).expand(batch, -1), None, cache)
    decoder = StaticDecoder(model, fused_weights(model), cache, graphs=False)
    expected = decoder(torch.randint(4, VOCAB, (batch,)), torch.full((batch,), cached), cache)  # fills the inputs
    b, T = decoder.bucket_of(batch, cache.length - 1)  # the same step again: it rewrites the same slot
    compiled = torch.compile(decoder._forward, dynamic=False)
    t0 = time.perf_counter()
    got = compiled(b, T)
    compile_s = time.perf_counter() - t0
    torch.testing.assert_close(got[:batch], expected, atol=1e-4, rtol=1e-4)
    eager_ms = ms_per_call(lambda: decoder._forward(b, T))
    compiled_ms = ms_per_call(lambda: compiled(b, T))
    print(f"batch {batch:3d}: eager {eager_ms:.3f} ms/step, compiled {compiled_ms:.3f} ms/step "
          f"({eager_ms / compiled_ms:.2f}x), compiled in {compile_s:.1f} s", flush=True)

if __name__ == "__main__":
    main()
