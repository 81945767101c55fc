"""The engine's KV-cache decoding equals a full forward; sampling is seeded; stops, logprobs and counters are exact."""

from __future__ import annotations

import pytest
import torch

from searchlearn.policy.engine import Engine
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM, sequence_logprobs
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.types import SamplingParams

TOK = TaskTokenizer(words=("answer", "check", "back", "no", "yes", "ok"), max_number=99)
PROMPTS = TOK.encode_batch(["12+7=", "check 3*4=12", "no", "yes 5-5=0 ok"])


def make_model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger weights than the 0.02 init: peaked, position-dependent distributions
        for name, p in model.named_parameters():
            if not name.endswith("norm.weight"):
                p.mul_(50.0 if "embed" in name else 8.0)
    return model


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    return make_model()


def left_pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), TOK.pad_id)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):], mask[i, width - len(r):] = torch.tensor(r), 1
    return ids, mask


@pytest.mark.parametrize("copies", [1, 5])  # 4 rows take the SDPA decode path, 20 the grouped-matmul one
def test_kv_cache_decoding_equals_full_forward(model, copies):
    prompts = PROMPTS * copies
    ids, mask = left_pad(prompts)
    B, P = ids.shape
    g = torch.Generator().manual_seed(0)
    new = torch.randint(4, TOK.vocab_size, (B, 6), generator=g)  # (B, 6) tokens fed one at a time
    with torch.inference_mode():
        full = model(torch.cat([ids, new], 1), attention_mask=torch.cat([mask, torch.ones_like(new)], 1))
        cache = model.new_cache(B, P + 6)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        steps = [model(ids, positions, mask, cache)[:, -1]]
        pos = positions[:, -1:] + 1
        for t in range(5):
            steps.append(model(new[:, t : t + 1], pos + t, cache=cache)[:, -1])
        # Drop rows mid-way (cache compaction), then keep decoding: still the full forward's logits.
        keep = torch.arange(0, B, 2)
        cache.select(keep)
        last = model(new[keep, 5:6], pos[keep] + 5, cache=cache)[:, -1]
    for t, logits in enumerate(steps):
        assert (logits - full[:, P - 1 + t]).abs().max() <= 1e-5
    assert (last - full[keep, P + 5]).abs().max() <= 1e-5


def test_greedy_is_deterministic_and_top_p_tiny_is_greedy(model):
    engine = Engine(model, TOK)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12)
    a, b = engine.generate(PROMPTS, greedy), engine.generate(PROMPTS, greedy)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    nucleus = engine.generate(PROMPTS, SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=12, seed=5))
    assert [c.token_ids for c in nucleus] == [c.token_ids for c in a]


def test_seeds(model):
    engine = Engine(model, TOK)

    def sample(seed):
        out = engine.generate(PROMPTS, SamplingParams(n=3, temperature=1.0, top_p=0.9, max_new_tokens=12, seed=seed))
        return [c.token_ids for c in out]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_stop_strings_and_length(model):
    engine = Engine(model, TOK)
    params = SamplingParams(n=8, temperature=1.0, max_new_tokens=24, stop=("\n",), seed=0)
    out = engine.generate(PROMPTS, params)
    stopped = [c for c in out if c.finish_reason == "stop"]
    assert stopped, "expected some completion to produce a newline"
    for c in stopped:
        assert c.text.endswith("\n") and c.text.count("\n") == 1 and c.token_ids[-1] == TOK.vocab["\n"]
    for c in out:
        if c.finish_reason == "length":
            assert c.num_tokens == 24 and "\n" not in c.text
    # A stop string spanning two tokens ends the completion where it first appears (one row: same random draws).
    free = Engine(model, TOK, eos_ids=()).generate(PROMPTS[:1], SamplingParams(temperature=1.0, max_new_tokens=20,
                                                                              seed=3))[0]
    assert free.finish_reason == "length" and free.num_tokens == 20
    stop = TOK.decode(free.token_ids[5:7])
    cut = Engine(model, TOK, eos_ids=()).generate(PROMPTS[:1], SamplingParams(temperature=1.0, max_new_tokens=20,
                                                                             seed=3, stop=(stop,)))[0]
    assert cut.finish_reason == "stop" and cut.text.endswith(stop) and stop not in cut.text[:-1]
    assert cut.token_ids == free.token_ids[: cut.num_tokens] and cut.num_tokens <= 7


def test_eos_ends_without_the_eos_token(model):
    free = Engine(model, TOK, eos_ids=()).generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=10))
    for prompt, c in zip(PROMPTS, free):
        eos = c.token_ids[3]
        out = Engine(model, TOK, eos_ids=(eos,)).generate([prompt], SamplingParams(temperature=0.0,
                                                                                  max_new_tokens=10))[0]
        assert out.finish_reason == "eos" and out.token_ids == c.token_ids[: c.token_ids.index(eos)]


@pytest.mark.parametrize("n", [2, 5])  # 8 rows decode through SDPA, 20 through the grouped matmuls
def test_logprobs_are_the_raw_model_distribution(model, n):
    """Rows end at different steps (at a stop string), so this also checks the cache after every compaction."""
    engine = Engine(model, TOK)
    params = SamplingParams(n=n, temperature=0.9, top_p=0.9, max_new_tokens=16, stop=("\n", "=", "+"), seed=0)
    out = engine.generate(PROMPTS, params)
    assert len({c.num_tokens for c in out}) > 2
    for c in out:
        ids = torch.tensor([PROMPTS[c.prompt_index] + c.token_ids])
        with torch.inference_mode():
            full = sequence_logprobs(model, ids, torch.ones_like(ids))[0, -c.num_tokens:]
        assert len(c.logprobs) == c.num_tokens
        assert torch.allclose(torch.tensor(c.logprobs), full, atol=1e-5)


def test_n_samples_are_prompt_major(model):
    engine = Engine(model, TOK)
    out = engine.generate(PROMPTS[:3], SamplingParams(n=4, temperature=1.0, max_new_tokens=6, seed=0))
    assert [c.prompt_index for c in out] == [0] * 4 + [1] * 4 + [2] * 4
    greedy = engine.generate(PROMPTS[:3], SamplingParams(n=2, temperature=0.0, max_new_tokens=8))
    single = engine.generate(PROMPTS[:3], SamplingParams(n=1, temperature=0.0, max_new_tokens=8))
    assert [c.token_ids for c in greedy] == [c.token_ids for c in single for _ in range(2)]


def test_ledger_counters_are_exact(model):
    engine = Engine(model, TOK)
    out = engine.generate(PROMPTS[:3], SamplingParams(n=4, temperature=1.0, max_new_tokens=16, seed=0))
    lengths = [len(p) for p in PROMPTS[:3]]
    assert engine.last_prefill_tokens == sum(lengths)  # each prompt prefilled once, not n times
    eos = sum(c.finish_reason == "eos" for c in out)  # an ending eos was sampled (and computed) but not returned
    assert engine.last_generated_tokens == sum(c.num_tokens for c in out) + eos
    # max_batch=5 splits the 12 rows as [p0 x4, p1] [p1 x3, p2 x2] [p2 x2]: p1 and p2 are prefilled twice.
    chunked = Engine(model, TOK, max_batch=5)
    greedy = SamplingParams(n=4, temperature=0.0, max_new_tokens=16)
    assert [c.token_ids for c in chunked.generate(PROMPTS[:3], greedy)] == [
        c.token_ids for c in engine.generate(PROMPTS[:3], greedy)
    ]
    assert chunked.last_prefill_tokens == lengths[0] + 2 * lengths[1] + 2 * lengths[2]


def test_a_prompts_samples_do_not_depend_on_its_batch(model):
    """Each row draws from its own stream (streams.py): alone, beside other prompts, in chunks of max_batch or on
    another worker, a prompt gets the same samples; identical prompts in one call get different ones."""
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=10, seed=7)
    together = Engine(model, TOK).generate(PROMPTS, params)
    alone = Engine(model, TOK).generate(PROMPTS[2:3], params)
    chunked = Engine(model, TOK, max_batch=2).generate(PROMPTS[::-1], params)
    texts = [c.token_ids for c in together]
    assert [c.token_ids for c in alone] == texts[6:9]
    assert [c.token_ids for c in chunked] == sum((texts[3 * i : 3 * i + 3] for i in (3, 2, 1, 0)), [])
    twice = Engine(model, TOK).generate([PROMPTS[0], PROMPTS[0]], SamplingParams(n=1, max_new_tokens=10, seed=7))
    assert twice[0].token_ids == texts[0] and twice[1].token_ids != twice[0].token_ids
    other = Engine(model, TOK).generate(PROMPTS, SamplingParams(n=3, max_new_tokens=10, seed=8))
    assert [c.token_ids for c in other] != texts


def test_a_prompts_budget_cuts_its_rows_where_the_unbudgeted_call_had_them(model):
    """`budgets`: each prompt's rows end at "length" after their own cap; what they wrote is the unbudgeted rows'
    first tokens (the same per-row streams), the other prompts are unchanged, and only tokens written are charged."""
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=12, seed=5)
    engine = Engine(model, TOK, eos_ids=())
    full = engine.generate(PROMPTS, params)
    budgets = [3, 12, 1, 7]
    cut = engine.generate(PROMPTS, params, budgets=budgets)
    for r, (a, b) in enumerate(zip(full, cut)):
        k = budgets[r // 2]
        assert b.token_ids == a.token_ids[:k] and b.logprobs == a.logprobs[:k] and b.finish_reason == "length"
    assert engine.last_generated_tokens == 2 * sum(budgets)
    with pytest.raises(ValueError, match="budgets"):
        engine.generate(PROMPTS, params, budgets=[3, 3])


@pytest.mark.parametrize("bias", [False, True])
def test_fused_decode_step_equals_the_models_forward(bias):
    """decode.py's fused step (one QKV and one gate-up product, RoPE on queries and keys at once) gives the logits of
    the model's own forward, with left padding, GQA and (Qwen2) q/k/v biases, and sees a learner's in-place update."""
    from searchlearn.policy.decode import decode_step

    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, attention_bias=bias)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 0.5 if "bias" in name else 0.3)
    ids, mask = left_pad(PROMPTS)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    token, pos = torch.tensor([5, 9, 3, 7]), positions[:, -1] + 1
    with torch.inference_mode():
        for update in range(2):
            if update:  # an optimizer step: the fused matrices are rebuilt from the new weights
                model.model.layers[1].mlp.up_proj.weight.add_(0.5)
                model.model.layers[0].self_attn.k_proj.weight.mul_(-1.0)
            reference, fused = model.new_cache(4, 12), model.new_cache(4, 12)
            model(ids, positions, mask, reference)
            model(ids, positions, mask, fused)
            for t in range(3):
                expected = model(token[:, None] + t, pos[:, None] + t, cache=reference)[:, -1]
                torch.testing.assert_close(decode_step(model, token + t, pos + t, fused), expected, atol=1e-5,
                                           rtol=1e-5)
            assert fused.length == reference.length == ids.shape[1] + 3


def test_fused_and_reference_engines_sample_the_same_tokens(model):
    params = SamplingParams(n=6, temperature=1.0, max_new_tokens=10, seed=3)
    fused = Engine(model, TOK).generate(PROMPTS, params)
    reference = Engine(model, TOK, fused=False).generate(PROMPTS, params)
    assert [c.token_ids for c in fused] == [c.token_ids for c in reference]
    for a, b in zip(fused, reference):
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5, rtol=0)
