"""The engine's prefix cache: reused K/V give a full prefill's logits, generation and tree search are unchanged, only
the new tokens are prefilled and counted, the LRU bound holds, stale weights are never reused; and the stop-token
table equals a per-token decode."""

from __future__ import annotations

import pytest
import torch

from searchlearn.policy.engine import Engine, token_texts
from searchlearn.policy.hf_tokenizer import HFTokenizer
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM, sequence_logprobs
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.prefix_cache import PrefixCache, default_tokens
from searchlearn.policy.tiny import tiny_tokenizer
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.reward.process import ConfidenceScorer
from searchlearn.search.beam import BeamConfig, beam_search
from searchlearn.search.budget import Budget
from searchlearn.search.mcts import MCTSConfig, mcts
from searchlearn.tasks.countdown import WORDS, CountdownTask
from searchlearn.types import SamplingParams

TOK = TaskTokenizer(words=("answer", "check", "back", "no", "yes", "ok"), max_number=99)
BASE = [[TOK.bos_id] + ids for ids in TOK.encode_batch(["12+7=", "check 3*4=12", "no", "yes 5-5=0 ok"])]


def make_model(seed: int = 0, vocab: int = TOK.vocab_size) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # peaked, position-dependent distributions (as in test_engine.py)
        for name, p in model.named_parameters():
            if not name.endswith("norm.weight"):
                p.mul_(50.0 if "embed" in name else 8.0)
    return model


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    return make_model()


def cached_engine(model, tokens: int = 10_000, **kwargs) -> Engine:
    """An engine whose prefix cache also keeps rows of calls without stop strings (most calls here have none)."""
    engine = Engine(model, TOK, prefix_cache_tokens=tokens, **kwargs)
    engine.prefix_cache.store_plain = True
    return engine


def full_logits(model, seq: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.tensor([seq]))[0]  # (T, V)


def mixed_prompts(engine: Engine) -> list[list[int]]:
    """Fill the cache, then prompts that reuse different amounts: an extension of a cached sequence, a prompt equal
    to one, one diverging inside a cached segment, a short prefix of one, and prompts with nothing cached."""
    seeded = engine.generate(BASE, SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=1))
    seqs = [BASE[c.prompt_index] + c.token_ids for c in seeded]
    extra = TOK.encode("4*5=20\n")
    return [
        seqs[0] + extra,  # cached sequence + a 7-token suffix
        BASE[1],  # exactly a cached prompt: its last token is re-run
        seqs[2][:-3] + TOK.encode("9"),  # diverges inside a cached segment
        BASE[3][:2],  # a 2-token prefix of a cached prompt
        [TOK.bos_id] + TOK.encode("back 1 2 3"),  # shares only BOS
        TOK.encode("ok 7"),  # nothing cached
        seqs[5] + extra + extra,  # long suffix after a long prefix
    ]


@pytest.mark.parametrize("copies", [1, 3])  # 7 rows decode through SDPA, 21 through the grouped matmuls
def test_reused_prefix_logits_equal_a_full_prefill(model, copies):
    engine = cached_engine(model)
    prompts = mixed_prompts(engine) * copies
    reused = [engine.prefix_cache.lookup(p, len(p) - 1).length for p in prompts]
    assert len(set(reused)) >= 5 and 0 in reused  # mixed prefix lengths in one batch, some with none
    suffix = [len(p) - m for p, m in zip(prompts, reused)]
    assert len(set(suffix)) >= 4 and 1 in suffix
    captured: list[torch.Tensor] = []
    hook = model.register_forward_hook(lambda module, args, out: captured.append(out))
    try:
        out = engine.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=8))
    finally:
        hook.remove()
    first = captured[0][:, -1]  # (U, V): the prefill's next-token logits, one row per distinct prompt
    distinct = list(dict.fromkeys(map(tuple, prompts)))
    assert len(first) == len(distinct)  # equal prompts are prefilled once
    for row, p in enumerate(distinct):
        assert (first[row] - full_logits(model, list(p))[-1]).abs().max() <= 1e-5
    assert engine.last_prefill_tokens == sum(suffix[: len(prompts) // copies])
    # Every decoded token (rows of different layouts, compacted as they end) has the full forward's logprob.
    for c in out:
        ids = torch.tensor([prompts[c.prompt_index] + c.token_ids])
        with torch.inference_mode():
            ref = sequence_logprobs(model, ids, torch.ones_like(ids))[0, -c.num_tokens:]
        assert torch.allclose(torch.tensor(c.logprobs), ref, atol=1e-5)
    plain = Engine(model, TOK).generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=8))
    assert [c.token_ids for c in out] == [c.token_ids for c in plain]


def test_prefill_counts_only_new_tokens(model):
    engine = cached_engine(model)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6)
    first = engine.generate(BASE, greedy)
    assert engine.last_prefill_tokens == sum(map(len, BASE))
    follow = [BASE[c.prompt_index] + c.token_ids + TOK.encode("1+2") for c in first]
    engine.generate(follow, greedy)
    # The cache holds prompt + all generated tokens but the last (never fed back): that one and "1+2" are prefilled.
    new = [1 + 3 if c.finish_reason != "eos" else 3 for c in first]
    assert engine.last_prefill_tokens == sum(new)
    engine.generate(follow, greedy)  # the same prompts again: only each prompt's last token
    assert engine.last_prefill_tokens == len(follow)
    stats = engine.prefix_cache
    assert stats.hits == stats.lookups - len(BASE) and stats.reused_tokens > 0


def test_lru_bound_and_eviction_order(model):
    engine = cached_engine(model, 40)
    cache = engine.prefix_cache
    greedy = SamplingParams(temperature=0.0, max_new_tokens=5)
    seen = []
    for i in range(12):
        prompt = [TOK.bos_id] + TOK.encode(f"{i} + {i + 1} =")
        out = engine.generate([prompt], greedy)[0]
        seen.append(prompt + out.token_ids[: len(out.token_ids) - (out.finish_reason != "eos")])
        assert cache.tokens <= 40
        assert cache.tokens == _stored(cache.root)
    assert cache.lookup(seen[-1], len(seen[-1])).length == len(seen[-1])  # the newest sequence is whole
    assert cache.lookup(seen[0], len(seen[0])).length <= 1  # the oldest is gone (BOS may be shared)
    engine.prefix_cache = PrefixCache(1, store_plain=True)  # smaller than any sequence: nothing is stored
    plain = Engine(model, TOK).generate([seen[3]], greedy)[0]
    assert engine.generate([seen[3]], greedy)[0].token_ids == plain.token_ids
    assert engine.prefix_cache.tokens <= 1


def _stored(node) -> int:
    return len(node.tokens) + sum(_stored(c) for c in node.children.values())


def kv(tree: PrefixCache, hit) -> torch.Tensor:
    return tree.pool.index_select(3, hit.slots)  # (2, layers, H_kv, length, D)


def test_radix_tree_returns_the_stored_keys_and_values(model):
    """Synthetic K/V (value = slot id) through inserts that split segments and an eviction: every lookup returns
    exactly the K/V of the tokens it matched, wherever they were stored."""
    cache = model.new_cache(1, 16)
    cache.kv.copy_(torch.arange(16.0)[:, None].expand_as(cache.kv))  # every key/value entry = its slot
    tree = PrefixCache(14)
    tree.insert([1, 2, 3, 4, 5, 6], cache, 0, [(0, 6)])
    tree.insert([1, 2, 3, 9, 9], cache, 0, [(10, 12), (12, 15)])  # splits [1..6] after 3; stores [9, 9] from 13, 14
    assert tree.insert([1, 2], cache, 0, [(0, 2)]) == 0  # already held: nothing added
    assert tree.tokens == 8
    hit = tree.lookup([1, 2, 3, 9, 9, 7], 99)
    assert hit.length == 5 and kv(tree, hit)[0, 0, 0, :, 0].tolist() == [0, 1, 2, 13, 14]
    hit = tree.lookup([1, 2, 3, 4, 5, 8], 99)
    assert hit.length == 5 and kv(tree, hit)[1, 1, 1, :, 0].tolist() == [0, 1, 2, 3, 4]
    assert tree.lookup([1, 2, 3, 4], 2).length == 2 and tree.lookup([2, 1], 5).length == 0
    tree.insert([7, 8, 9, 10], cache, 0, [(4, 6), (9, 11)])  # a row whose prefix and suffix are apart
    assert kv(tree, tree.lookup([7, 8, 9, 10, 11], 99))[1, 0, 1, :, 0].tolist() == [4, 5, 9, 10]
    tree.insert([7, 8, 9, 10, 12, 13], cache, 0, [(4, 6), (9, 13)])
    assert tree.tokens == 14  # the pool is full
    assert kv(tree, tree.lookup([7, 8, 9, 10, 12, 13], 99))[0, 1, 0, :, 0].tolist() == [4, 5, 9, 10, 11, 12]
    tree.lookup([1, 2, 3, 9], 99)  # [9, 9] is now newer than [4, 5, 6], the least recently used leaf
    assert tree.insert([20, 21, 22], cache, 0, [(0, 3)]) == 3  # evicts [4, 5, 6]
    assert tree.tokens == 14 and _stored(tree.root) == 14
    assert tree.lookup([1, 2, 3, 4, 5], 99).length == 3 and tree.lookup([1, 2, 3, 9, 9], 99).length == 5
    assert kv(tree, tree.lookup([20, 21, 22], 99))[0, 0, 0, :, 0].tolist() == [0, 1, 2]
    batch = PrefixCache(6)  # one batch whose third row evicts the first, whose copy is still pending
    assert batch.insert_many(cache, [([1, 2, 3], 0, [(0, 3)]), ([4, 5, 6], 0, [(3, 6)]), ([7, 8, 9], 0, [(6, 9)])]) == 9
    assert batch.lookup([1, 2, 3], 9).length == 0 and batch.tokens == 6
    assert kv(batch, batch.lookup([4, 5, 6], 9))[0, 0, 0, :, 0].tolist() == [3, 4, 5]
    assert kv(batch, batch.lookup([7, 8, 9], 9))[1, 1, 1, :, 0].tolist() == [6, 7, 8]
    small = PrefixCache(5)
    small.insert([1, 2, 3], cache, 0, [(0, 3)])
    assert small.insert([1, 2, 3, 4, 5, 6], cache, 0, [(0, 6)]) == 0  # room only by evicting its own prefix
    assert small.tokens == 3 and small.insert([1, 2, 3, 4, 5], cache, 0, [(0, 5)]) == 2


def test_changed_weights_clear_the_cache():
    model = make_model(seed=1)
    engine = cached_engine(model)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6)
    engine.generate(BASE, greedy)
    assert engine.prefix_cache.tokens > 0
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.tensor(BASE[:1])).sum().backward()
    optimizer.step()  # in place: bumps the parameters' version counters
    out = engine.generate(BASE, greedy)
    assert engine.last_prefill_tokens == sum(map(len, BASE))  # nothing reused
    assert [c.token_ids for c in out] == [c.token_ids for c in Engine(model, TOK).generate(BASE, greedy)]
    assert engine.prefix_cache.tokens > 0  # this call's rows


def test_only_step_calls_are_kept_by_default(model):
    """Rows of plain sampling (no stop strings: nothing extends them) are not stored; those of step calls are, and a
    plain call still reads what is there."""
    engine = Engine(model, TOK, prefix_cache_tokens=10_000)
    engine.generate(BASE, SamplingParams(n=4, temperature=1.0, max_new_tokens=8, seed=0))
    assert engine.prefix_cache.tokens == 0
    steps = engine.generate(BASE, SamplingParams(n=2, temperature=1.0, max_new_tokens=8, stop=("=",), seed=0))
    assert engine.prefix_cache.tokens > 0
    follow = [BASE[c.prompt_index] + c.token_ids for c in steps]
    engine.generate(follow, SamplingParams(temperature=0.0, max_new_tokens=4))
    assert engine.last_prefill_tokens < sum(map(len, follow)) // 2


def test_seeded_sampling_is_reproducible_with_the_cache(model):
    params = SamplingParams(n=3, temperature=1.0, top_p=0.9, max_new_tokens=8, stop=("=",), seed=7)

    def run(cache_tokens: int) -> list[list[list[int]]]:
        engine = Engine(model, TOK, prefix_cache_tokens=cache_tokens)  # stop strings: rows are kept
        first = engine.generate(BASE, params)
        again = engine.generate([BASE[c.prompt_index] + c.token_ids for c in first], params)
        return [[c.token_ids for c in first], [c.token_ids for c in again]]

    assert run(10_000) == run(10_000) == run(0)


def search_policy(prefix_cache_tokens: int) -> LocalPolicy:
    """A random 2-layer model whose lm_head favours "\\n" and eos (as in test_search_ledger.py). Its words are fixed
    here, not the task's WORDS: these random weights grow multi-step trees only with this token order."""
    tok = TaskTokenizer(("answer", "check", "back", "no", "yes", "ok", "vs"), max_number=99)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))
    head = torch.nn.Linear(32, tok.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight * 20)
        head.bias.zero_()
        head.bias[tok.vocab["\n"]] = 3.0
        head.bias[tok.eos_id] = 1.5
    model.lm_head = head
    return LocalPolicy(model, tok, prefix_cache_tokens=prefix_cache_tokens)


def tree_signature(results):
    return [[(n.parent, n.step.text if n.step else None, n.token_ids, n.count) for n in r.tree.nodes]
            for r in results]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("search", ["beam", "mcts"])
def test_tree_search_is_unchanged_and_prefills_less(search, temperature):
    task = CountdownTask()
    problems = task.problems("test", 4, seed=5)
    small = dict(step_tokens=6, max_new_tokens=30, max_steps=8, temperature=temperature, seed=3)
    runs = {}
    for cached in (0, 100_000):
        policy = search_policy(cached)
        if search == "beam":
            results = beam_search(problems, policy, task, ConfidenceScorer(), Budget(8),
                                  BeamConfig(width=2, lookahead=1, **small))
        else:
            results = mcts(problems, policy, task, ConfidenceScorer(), Budget(8), MCTSConfig(k=3, **small))
        runs[cached] = (tree_signature(results), [r.answer for r in results], policy.ledger)
    (trees_off, answers_off, off), (trees_on, answers_on, on) = runs[0], runs[100_000]
    assert trees_on == trees_off and answers_on == answers_off
    assert on.generated_tokens == off.generated_tokens
    assert on.prefilled_tokens < (0.5 if temperature else 0.8) * off.prefilled_tokens  # greedy trees are chains


def test_local_policy_caches_by_default_and_can_opt_out():
    assert search_policy(0).engine.prefix_cache is None
    tok = TaskTokenizer(WORDS, max_number=99)
    policy = LocalPolicy(make_model(vocab=tok.vocab_size), tok)
    assert policy.engine.prefix_cache.max_tokens == default_tokens(policy.model) == 1 << 16  # 256 B per token


@pytest.mark.parametrize("kind", ["task", "hf"])
def test_stop_token_ids_equal_a_per_token_decode(kind):
    tokenizer = TOK if kind == "task" else HFTokenizer(tiny_tokenizer("llama"))
    engine = Engine(make_model(vocab=tokenizer.vocab_size), tokenizer)
    texts = token_texts(tokenizer, tokenizer.vocab_size)
    assert texts == [tokenizer.decode([t]) for t in range(tokenizer.vocab_size)]
    for stops in [("\n",), ("=", "+"), ("e",), ("ok", " ")]:
        expected = {t for t in range(tokenizer.vocab_size) if any(s in tokenizer.decode([t]) for s in stops)}
        assert engine.stop_token_ids(stops) == expected
    assert token_texts(tokenizer, tokenizer.vocab_size) is texts  # once per tokenizer
