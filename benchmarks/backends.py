"""The three samplers on one workload: the project's engine, transformers' `generate` and vLLM. Not a test.

Same weights (a random Llama/Qwen2-shaped model built from a config, no download), same prompts, sampling at
temperature 1 with eos disabled, so every row writes exactly `--new-tokens` tokens on every side: tokens/s are like for
like, printed with their ratios to the native engine. Then parity: greedy tokens of 16 prompts (rows identical to
transformers', and where the first difference falls) and the largest per-token logprob difference on the tokens
before it. Run it from the vLLM environment (`make setup-vllm`):

    .venv-vllm/bin/python benchmarks/backends.py                                      # CPU, the demo's model size
    .venv-vllm/bin/python benchmarks/backends.py --device cuda --dtype bfloat16 --size 0.5b   # benchmarks/gpu.sh
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
import transformers

from searchlearn.policy.engine import Engine
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.tiny import spread_weights
from searchlearn.types import SamplingParams

SIZES = {  # the demo's policy, and Qwen2.5-0.5B's shape (894M with its untied 152k vocabulary: 494M tied)
    "demo": dict(vocab_size=64, hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                 intermediate_size=384, max_position_embeddings=384),
    "0.5b": dict(vocab_size=151936, hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, intermediate_size=4864, max_position_embeddings=2048, attention_bias=True,
                 tie_word_embeddings=True, rope_theta=1e6),
}


class Ids:
    """The tokenizer the engine needs here: ids only (nothing is decoded for the benchmark)."""

    pad_id, bos_id, eos_id = 0, None, None

    def decode(self, ids) -> str:
        return ""


def prompts(batch: int, vocab: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, vocab, (int(n),), generator=g).tolist()
            for n in torch.randint(16, 33, (batch,), generator=g)]


def timed(fn, repeats: int) -> tuple[float, list[list[int]]]:
    """(best tokens/s over `repeats` calls after a warm-up, the last call's token ids)."""
    best, out = 0.0, []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        out = fn(i)
        rate = sum(map(len, out)) / (time.perf_counter() - t0)
        best = max(best, rate) if i else 0.0
    return best, out


def native_fn(engine: Engine, batch, new: int, temperature: float):
    def run(seed):
        params = SamplingParams(temperature=temperature, max_new_tokens=new, seed=seed)
        return [c.token_ids for c in engine.generate(batch, params)]
    return run


def native_logprobs(engine: Engine, batch, new: int) -> list[list[float]]:
    return [c.logprobs for c in engine.generate(batch, SamplingParams(temperature=0, max_new_tokens=new))]


def hf_fn(model, batch, new: int, temperature: float, device):
    P = max(map(len, batch))
    ids = torch.zeros(len(batch), P, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(batch):
        ids[i, P - len(p) :], mask[i, P - len(p) :] = torch.tensor(p), 1
    ids, mask = ids.to(device), mask.to(device)
    kwargs = dict(attention_mask=mask, max_new_tokens=new, min_new_tokens=new, pad_token_id=0, eos_token_id=None,
                  return_dict_in_generate=True, output_logits=True)
    kwargs.update(dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0) if temperature else
                  dict(do_sample=False))

    def run(seed):
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = model.generate(ids, **kwargs)
        run.logits = torch.stack(out.logits, 1).float()  # (B, new, V)
        run.tokens = out.sequences[:, P:]
        return run.tokens.tolist()
    return run


def vllm_fn(llm, batch, new: int, temperature: float):
    from vllm import SamplingParams as VSP
    from vllm import TokensPrompt

    requests = [TokensPrompt(prompt_token_ids=p) for p in batch]

    def run(seed):
        params = VSP(temperature=temperature, top_p=1.0, max_tokens=new, min_tokens=new, ignore_eos=True,
                     detokenize=False, logprobs=0)
        out = llm.generate(requests, params, use_tqdm=False)
        run.logprobs = [[lp[t].logprob for t, lp in zip(o.outputs[0].token_ids, o.outputs[0].logprobs)] for o in out]
        return [list(o.outputs[0].token_ids) for o in out]
    return run


def agreement(a: list[list[int]], b: list[list[int]]) -> tuple[int, float]:
    """(rows identical, mean index of the first difference, counting an identical row as its length)."""
    firsts = [next((j for j, (x, y) in enumerate(zip(r, s)) if x != y), len(r)) for r, s in zip(a, b)]
    return sum(r == s for r, s in zip(a, b)), sum(firsts) / len(firsts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    transformers.logging.set_verbosity_error()
    import vllm

    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SIZES[args.size]))
    spread_weights(model)
    with torch.no_grad():  # spread_weights' scale for a 4-layer model: keep deep ones' logits finite in bf16
        for name, p in model.named_parameters():
            if name.endswith("proj.weight"):
                p.mul_(min(1.0, (128 / model.config.hidden_size) ** 0.5))
    model = model.to(dtype)
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        hf = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=dtype).to(args.device).eval()
        t0 = time.perf_counter()
        cuda = args.device.startswith("cuda")  # vLLM's CUDA graphs on a GPU, as the native engine's
        llm = vllm.LLM(model=d, skip_tokenizer_init=True, dtype=args.dtype, seed=0, enforce_eager=not cuda,
                       gpu_memory_utilization=0.5, max_model_len=min(1024, model.config.max_position_embeddings),
                       **({} if cuda else {"block_size": 32}))
        start = time.perf_counter() - t0
    engine = Engine(model.to(args.device).eval(), Ids(), device=args.device, max_batch=args.batch, eos_ids=())
    batch, new = prompts(args.batch, model.config.vocab_size), args.new_tokens
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, vllm {vllm.__version__}, "
          f"device {args.device}, {args.dtype}, threads {torch.get_num_threads()}; model {args.size} "
          f"({model.num_parameters() / 1e6:.1f}M parameters); batch {args.batch} × {new} new tokens, best of "
          f"{args.repeats}; vLLM started in {start:.1f} s")
    samplers = [("native", native_fn(engine, batch, new, 1.0))]
    if engine.graphs:  # on a GPU the native engine replays CUDA graphs; its eager steps beside them
        eager = Engine(engine.model, Ids(), device=args.device, max_batch=args.batch, eos_ids=(), graphs=False)
        samplers.append(("native eager", native_fn(eager, batch, new, 1.0)))
    samplers += [("transformers", hf_fn(hf, batch, new, 1.0, args.device)), ("vllm", vllm_fn(llm, batch, new, 1.0))]
    rates = {}
    for name, fn in samplers:
        rates[name], _ = timed(fn, args.repeats)
    for name, rate in rates.items():
        print(f"  {name:>12}: {rate:9.0f} tok/s   {rate / rates['native']:5.2f}× native")

    few = batch[:16]
    hf_greedy, vllm_greedy = hf_fn(hf, few, 32, 0.0, args.device), vllm_fn(llm, few, 32, 0.0)
    reference = hf_greedy(0)
    logp_hf = torch.log_softmax(hf_greedy.logits, -1).gather(-1, hf_greedy.tokens[..., None]).squeeze(-1).cpu()
    print("  greedy parity against transformers (16 prompts × 32 tokens):")
    for name, out, logps in (("native", native_fn(engine, few, 32, 0.0)(0), native_logprobs(engine, few, 32)),
                             ("vllm", vllm_greedy(0), None)):
        logps = logps if logps is not None else vllm_greedy.logprobs
        same, first = agreement(out, reference)
        diff = max((abs(a - float(b)) for row, lp, ref, r in zip(out, logps, logp_hf, reference)
                    for j, (a, b) in enumerate(zip(lp, ref)) if row[: j + 1] == r[: j + 1]), default=0.0)
        print(f"  {name:>12}: {same}/16 rows identical, first difference at token {first:.1f} on average, "
              f"max |Δ logprob| before it {diff:.2e}")


if __name__ == "__main__":
    main()
