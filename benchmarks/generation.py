"""Sampled tokens/s: our Engine vs transformers `generate`, same weights, same number of tokens. Not a test.

Both sample with temperature 1, top-p 1 (transformers' default top-k 50 switched off), never stop at eos, and produce
exactly `--new-tokens` tokens for every row. Prompts are random, of unequal lengths (left padding on both sides). The
transformers model is loaded from our `save_pretrained` directory with its default (sdpa) attention.

    python benchmarks/generation.py [--quick]
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
    params = SamplingParams(n=1, temperature=1.0, top_p=1.0, max_new_tokens=new_tokens, seed=0)
    engine.generate(prompts, params)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = engine.generate(prompts, params)
        best = min(best, time.perf_counter() - t0)
    assert sum(c.num_tokens for c in out) == len(prompts) * new_tokens
    return len(prompts) * new_tokens / best


def time_hf(model, prompts, new_tokens: int, pad_id: int, repeats: int) -> float:
    P = max(map(len, prompts))
    ids = torch.full((len(prompts), P), pad_id)
    mask = torch.zeros(len(prompts), P, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, P - len(p) :], mask[i, P - len(p) :] = torch.tensor(p), 1
    kwargs = dict(
        attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=new_tokens,
        min_new_tokens=new_tokens, pad_token_id=pad_id, eos_token_id=None,
    )
    with torch.inference_mode():
        model.generate(ids, **kwargs)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = model.generate(ids, **kwargs)
            best = min(best, time.perf_counter() - t0)
    assert out.shape[1] == P + new_tokens
    return len(prompts) * new_tokens / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer new tokens and one timed repeat")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens generated per row (default 128, quick 32)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args()
    new_tokens = args.new_tokens or (32 if args.quick else 128)
    repeats = 1 if args.quick else 3
    transformers.logging.set_verbosity_error()
    tokenizer = TaskTokenizer(words=("answer", "check", "back", "no", "yes", "ok"), max_number=999)

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}, "
          f"{new_tokens} new tokens per row, best of {repeats}")
    print(f"{'model':>6} {'params':>8} {'batch':>5} {'ours tok/s':>11} {'hf tok/s':>10} {'ours/hf':>8}")
    for name, size in SIZES.items():
        torch.manual_seed(0)
        ours = LlamaForCausalLM(LlamaConfig(vocab_size=tokenizer.vocab_size, **size)).eval()
        with tempfile.TemporaryDirectory() as d:
            ours.save_pretrained(d)
            hf = transformers.LlamaForCausalLM.from_pretrained(d).eval()
        engine = Engine(ours, tokenizer, eos_ids=())  # never stop at eos: every row makes new_tokens tokens
        for batch in args.batches:
            prompts = make_prompts(batch, tokenizer.vocab_size, seed=batch)
            a = time_ours(engine, prompts, new_tokens, repeats)
            b = time_hf(hf, prompts, new_tokens, tokenizer.pad_id, repeats)
            print(f"{name:>6} {ours.num_parameters() / 1e6:7.2f}M {batch:5d} {a:11.0f} {b:10.0f} {a / b:7.2f}x", flush=True)


if __name__ == "__main__":
    main()
