"""SFT training throughput of the demo's policy initialization: train tokens/s, eager float32 against the options.

Each variant runs the same seeded batches (the demo's model and traces, `--batch` sequences per step) for `--steps`
timed steps after `--warmup` untimed ones (compilation happens there), in one process, one after the other, so the
ratios compare like with like. Tokens are real (non-padding) tokens of prompt and completion.

    python benchmarks/sft_speed.py                       # eager, compiled, bf16 autocast (where the CPU has bf16)
    python benchmarks/sft_speed.py --variants eager compile --steps 30
"""

from __future__ import annotations

import argparse
import time

import torch

from searchlearn.learn.data import batch_indices
from searchlearn.learn.losses import sft_loss
from searchlearn.learn.sft import SFTConfig, collate
from searchlearn.loop.initialize import InitConfig, build_model, init_examples, task_tokenizer
from searchlearn.tasks.registry import DEFAULT_TASK


def cpu_has_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def run(variant: str, examples, tokenizer, cfg: InitConfig, steps: int, warmup: int) -> dict:
    model = build_model(cfg.model, tokenizer, seed=0)
    model.train()
    torch.use_deterministic_algorithms(variant == "compile")  # as train_sft compiles: reproducible kernels
    forward = torch.compile(model, dynamic=True) if variant.startswith("compile") else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    lengths = [len(e[0]) + len(e[1]) for e in examples]
    sft = SFTConfig(batch_size=cfg.sft.batch_size)
    tokens, padded, t0 = 0, 0, 0.0
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        inputs, targets, mask = collate([examples[i] for i in batch_indices(len(examples), step, sft, lengths)],
                                        tokenizer.pad_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
            logits = forward(inputs)  # (B, T, V)
        loss, _ = sft_loss(logits.float(), targets, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= warmup:
            tokens += int((inputs != tokenizer.pad_id).sum())
            padded += inputs.numel()
    seconds = time.perf_counter() - t0
    return {"variant": variant, "tokens_per_s": tokens / seconds, "padding": 1 - tokens / padded,
            "s_per_step": seconds / steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=None, help="eager | compile | bf16 (default: all the CPU runs)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = args.variants or ["eager", "compile"] + ["bf16"] * cpu_has_bf16()
    cfg = InitConfig()
    task = DEFAULT_TASK.build()
    tokenizer = task_tokenizer(task, cfg.model)
    examples = init_examples(task, tokenizer, 2000, seed=0, max_len=cfg.model.max_position_embeddings)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU bf16: {cpu_has_bf16()}; "
          f"batch {cfg.sft.batch_size}, {args.steps} timed steps")
    rows = [run(v, examples, tokenizer, cfg, args.steps, args.warmup) for v in variants]
    base = rows[0]["tokens_per_s"]
    for r in rows:
        print(f"{r['variant']:>8}: {r['tokens_per_s']:8.0f} train tokens/s  ({r['tokens_per_s'] / base:.2f}x "
              f"{rows[0]['variant']}), {r['s_per_step']:.3f} s/step, padding {r['padding']:.1%}")


if __name__ == "__main__":
    main()
