"""Static-shape decode steps (the CUDA-graph path) equal the fused step: bucketed batch and length, masked slots,
the write slot as a tensor, compaction in place. On a CPU they run eagerly; `SEARCHLEARN_TEST_DEVICE=cuda` (gpu.sh)
runs the same tests with CUDA graphs captured and replayed."""

from __future__ import annotations

import os

import pytest
import torch

from searchlearn.policy.decode import decode_step, fused_weights
from searchlearn.policy.engine import Engine
from searchlearn.policy.static_decode import StaticDecoder, bucket
from searchlearn.types import SamplingParams
from tests.parity.test_engine import PROMPTS, TOK, left_pad, make_model

DEVICE = torch.device(os.environ.get("SEARCHLEARN_TEST_DEVICE", "cpu"))
GRAPHS = DEVICE.type == "cuda"


@pytest.fixture(scope="module")
def model():
    return make_model().to(DEVICE)


def test_buckets_are_powers_of_two_within_the_buffer():
    assert [bucket(n, 64) for n in (1, 2, 3, 5, 8, 9, 33, 64)] == [1, 2, 4, 8, 8, 16, 64, 64]
    assert bucket(5, 6) == 6 and bucket(70, 96) == 96  # the buffer's size caps the bucket
    assert bucket(3, 300, smallest=64) == 64 and bucket(65, 300, smallest=64) == 128
    with pytest.raises(ValueError, match="exceeds"):
        bucket(7, 6)


def prefilled(model, rows: int, max_length: int):
    """A cache with PROMPTS left-padded and prefilled, their rows repeated to `rows`; the next tokens and positions."""
    ids, mask = (t.to(DEVICE) for t in left_pad(PROMPTS))
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    cache = model.new_cache(len(PROMPTS), max_length)
    model(ids, positions, mask, cache)
    index = torch.arange(rows, device=DEVICE) % len(PROMPTS)
    cache.select(index)
    return cache, positions[index, -1] + 1


@torch.inference_mode()
def test_static_steps_equal_fused_steps_across_buckets_and_compaction(model):
    weights = fused_weights(model)
    reference, pos = prefilled(model, 6, 90)
    static, _ = prefilled(model, 6, 90)
    decoder = StaticDecoder(model, weights, static, graphs=GRAPHS)
    token = torch.arange(6, device=DEVICE) + 5
    for t in range(80):  # the filled length crosses MIN_SLOTS: a second length bucket (then capped at 90)
        if t in (20, 50):  # drop rows as the engine does, in place: 6 rows, then 3 (bucket 4: one padding row), then 2
            keep = torch.arange(3 if t == 20 else 2, device=DEVICE)
            for cache in (reference, static):
                cache.select(keep)
            token, pos = token[keep], pos[keep]
        expected = decode_step(model, token, pos + t, reference, weights)
        got = decoder(token, pos + t, static)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        token = expected.argmax(-1)
    assert static.length == reference.length
    torch.testing.assert_close(static.kv[..., : static.length, :], reference.kv[..., : reference.length, :])
    if GRAPHS:  # (6, 64), (4, 64), (2, 64), (2, 90): a graph per (batch, length) bucket the staircase visits
        assert decoder.graph_count == 4


@torch.inference_mode()
def test_static_decoder_refuses_a_reallocated_cache_and_graphs_off_cuda(model):
    cache, pos = prefilled(model, 2, 40)
    decoder = StaticDecoder(model, fused_weights(model), cache, graphs=GRAPHS)
    cache.select([0, 1, 1])  # growing reallocates: the graph's buffers would be stale
    with pytest.raises(ValueError, match="reallocated"):
        decoder(torch.tensor([1, 2, 3], device=DEVICE), torch.cat([pos, pos[:1]]), cache)
    if not GRAPHS:
        with pytest.raises(ValueError, match="CUDA"):
            StaticDecoder(model, fused_weights(model), cache, graphs=True)


@pytest.mark.parametrize("case", ["sampled", "greedy_stops", "eos_ragged", "prefix_cache_tool_answers"])
def test_engine_on_static_steps_samples_what_the_fused_engine_samples(model, case):
    """Whole generate calls: same tokens, logprobs within 1e-5, rows ending at different steps (compaction)."""
    kwargs = dict(eos_ids=(TOK.encode("no")[-1],)) if case == "eos_ragged" else {}
    if case == "prefix_cache_tool_answers":
        kwargs["prefix_cache_tokens"] = 10_000
    params = SamplingParams(n=5, temperature=0.0 if case == "greedy_stops" else 1.0, max_new_tokens=70, seed=4,
                            stop=("=",) if case in ("greedy_stops", "prefix_cache_tool_answers") else ())
    answers = (lambda row, tokens: TOK.encode("ok") if len(tokens) < 40 and row % 2 else None
               ) if case == "prefix_cache_tool_answers" else None
    outs = []
    for graphs in (False, True):
        engine = Engine(model, TOK, device=DEVICE, graphs=graphs, **kwargs)
        assert engine.graphs is graphs
        outs.append([engine.generate(PROMPTS, params, on_stop=answers) for _ in range(2)])  # 2nd call: cache hits
    for fused, static in zip(*outs):
        assert [c.token_ids for c in static] == [c.token_ids for c in fused]
        assert [c.finish_reason for c in static] == [c.finish_reason for c in fused]
        for a, b in zip(static, fused):
            torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5, rtol=0)
    lengths = {c.num_tokens for c in outs[0][0]}
    assert len(lengths) > 1 or case == "sampled"  # rows ended at different steps where the case makes them


def test_graphs_default_to_the_device():
    model = make_model()
    assert Engine(model, TOK).graphs is False
    assert Engine(model, TOK, graphs=True, fused=False).graphs is False  # static steps are fused steps
    if torch.cuda.is_available():
        assert Engine(make_model(), TOK, device="cuda").graphs is True
