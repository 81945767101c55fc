"""Sampled tokens/s: our Engine vs transformers `generate`, same weights, same sampling distribution. Not a test.

Two workloads, both sampling at temperature 1, top-p 1 (transformers' default top-k 50 switched off), from random
prompts of unequal lengths (left padding on both sides):

  fixed   eos disabled: every row produces exactly `--new-tokens` tokens on both sides (like for like per step).
  ragged  32 of the ~1026 ids act as eos, so on these near-uniform random models a row ends with probability ~3% per
          token (geometric lengths, capped at `--new-tokens`), as sampled reasoning steps do. transformers keeps
          finished rows in its batch until the last one ends; our engine drops them. tokens/s counts the tokens
          returned (before the eos) on each side.

The transformers model is loaded from our `save_pretrained` directory with its default (sdpa) attention. Our engine
runs twice: with the fused decode step (policy/decode.py, the default) and with the model's own forward per step
(`Engine(fused=False)`, the reference path). GFLOP/s counts 2 × parameters per returned token (the matrix products;
attention over the cache is not counted) and is set against this machine's fp32 matmul rate, measured in the same run
(best of 2048×n @ n×n, n = 128 … 1024).

`--static` adds the engine on static-shape steps run eagerly (`Engine(graphs=True)` on a CPU: what a GPU replays as
CUDA graphs, static_decode.py), as its ratio to the fused engine.

    python benchmarks/generation.py [--quick] [--static]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import transformers

from searchlearn.policy.engine import Engine
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.types import SamplingParams

SIZES = {
    "~1M": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=384),
    "~6M": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, intermediate_size=768),
}


def make_prompts(batch: int, vocab: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, 17, (batch,), generator=g).tolist()
    return [torch.randint(4, vocab, (n,), generator=g).tolist() for n in lengths]


def time_ours(engine: Engine, prompts, new_tokens: int, repeats: int) -> float:
    """Best tokens/s over `repeats` calls (after a warm-up); tokens = completion tokens returned."""
    best = 0.0
    for seed in range(repeats + 1):
        params = SamplingParams(n=1, temperature=1.0, top_p=1.0, max_new_tokens=new_tokens, seed=seed)
        t0 = time.perf_counter()
        out = engine.generate(prompts, params)
        rate = sum(c.num_tokens for c in out) / (time.perf_counter() - t0)
        assert engine.eos_ids or all(c.num_tokens == new_tokens for c in out)  # fixed: exactly new_tokens per row
        best = max(best, rate) if seed else 0.0  # seed 0 is the warm-up
    return best


def time_hf(model, prompts, new_tokens: int, pad_id: int, eos_ids: list[int], repeats: int) -> float:
    """Best tokens/s of `generate` over `repeats` calls; tokens = those before each row's first eos."""
    P = max(map(len, prompts))
    ids = torch.full((len(prompts), P), pad_id)
    mask = torch.zeros(len(prompts), P, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, P - len(p) :], mask[i, P - len(p) :] = torch.tensor(p), 1
    kwargs = dict(attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                  max_new_tokens=new_tokens, pad_token_id=pad_id, eos_token_id=eos_ids or None)
    best = 0.0
    with torch.inference_mode():
        for seed in range(repeats + 1):
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            out = model.generate(ids, **kwargs)[:, P:]  # (B, <= new_tokens)
            elapsed = time.perf_counter() - t0
            assert eos_ids or out.shape[1] == new_tokens
            ended = torch.isin(out, torch.tensor(eos_ids or [-1])).long().cumsum(-1) > 0
            best = max(best, int((~ended).sum()) / elapsed) if seed else 0.0
    return best


def matmul_rate() -> float:
    """This machine's fp32 GFLOP/s on square-ish products (best over sizes), measured now."""
    best = 0.0
    for n in (128, 256, 512, 1024):
        a, b = torch.randn(2048, n), torch.randn(n, n)
        a @ b
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        best = max(best, 10 * 2 * 2048 * n * n / (time.perf_counter() - t0) / 1e9)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer new tokens and one timed repeat")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens generated per row (default 128, quick 32)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--static", action="store_true", help="also time the static-shape steps (eager on a CPU)")
    args = parser.parse_args()
    new_tokens = args.new_tokens or (32 if args.quick else 128)
    repeats = 1 if args.quick else 3
    transformers.logging.set_verbosity_error()
    tokenizer = TaskTokenizer(words=("answer", "check", "back", "no", "yes", "ok"), max_number=999)

    workloads = {"fixed": [], "ragged": list(range(100, 132))}  # eos ids per workload
    peak = matmul_rate()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}, "
          f"up to {new_tokens} new tokens per row, best of {repeats}; fp32 matmul {peak:.0f} GFLOP/s")
    print(f"{'model':>6} {'params':>7} {'workload':>8} {'batch':>5} {'ours tok/s':>10} {'reference':>9} "
          f"{'hf tok/s':>9} {'ours/hf':>7} {'ours/ref':>8} {'GFLOP/s':>7} {'of peak':>7}"
          + (f" {'static/ours':>11}" if args.static else ""))
    for name, size in SIZES.items():
        torch.manual_seed(0)
        ours = LlamaForCausalLM(LlamaConfig(vocab_size=tokenizer.vocab_size, **size)).eval()
        with tempfile.TemporaryDirectory() as d:
            ours.save_pretrained(d)
            hf = transformers.LlamaForCausalLM.from_pretrained(d).eval()
        for workload, eos_ids in workloads.items():
            engine = Engine(ours, tokenizer, eos_ids=eos_ids)
            reference = Engine(ours, tokenizer, eos_ids=eos_ids, fused=False)
            static = Engine(ours, tokenizer, eos_ids=eos_ids, graphs=True)
            for batch in args.batches:
                prompts = make_prompts(batch, tokenizer.vocab_size, seed=batch)
                a = time_ours(engine, prompts, new_tokens, repeats)
                r = time_ours(reference, prompts, new_tokens, repeats)
                b = time_hf(hf, prompts, new_tokens, tokenizer.pad_id, eos_ids, repeats)
                s = time_ours(static, prompts, new_tokens, repeats) if args.static else None
                gflops = 2 * ours.num_parameters() * a / 1e9
                print(f"{name:>6} {ours.num_parameters() / 1e6:6.2f}M {workload:>8} {batch:5d} {a:10.0f} {r:9.0f} "
                      f"{b:9.0f} {a / b:6.2f}x {a / r:7.2f}x {gflops:7.1f} {gflops / peak:6.0%}"
                      + ("" if s is None else f" {s / a:10.2f}x"), flush=True)


if __name__ == "__main__":
    main()
