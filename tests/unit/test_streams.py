"""The counter-based streams: exact 32-bit arithmetic, uniform draws, keys that depend on the right things."""

import random

import torch

from searchlearn.policy.streams import _mul32, row_keys, uniforms


def test_mul32_is_multiplication_mod_2_to_32_without_overflow():
    rng = random.Random(0)
    h = [0, 1, 0xFFFFFFFF, 0x80000000] + [rng.randrange(1 << 32) for _ in range(1000)]
    for c in (0x85EBCA6B, 0xC2B2AE35, 0xFFFFFFFF):
        assert _mul32(torch.tensor(h), c).tolist() == [x * c % (1 << 32) for x in h]


def test_uniforms_are_uniform_and_fresh_at_every_step():
    keys = row_keys([[i] for i in range(20_000)], 1, seed=0)  # (20000, 2)
    u0, u1 = uniforms(keys, 0).flatten(), uniforms(keys, 1).flatten()
    assert 0.0 <= u0.min() and u0.max() < 1.0
    counts = torch.histc(u0, bins=10, min=0, max=1)  # chi-square, 9 dof: 99.9 % quantile 27.9
    assert ((counts - 2000) ** 2 / 2000).sum() < 27.9
    assert abs(torch.corrcoef(torch.stack([u0, u1]))[0, 1]) < 0.03  # 4.2 standard errors
    assert abs(u0.mean() - 0.5) < 0.01


def test_keys_follow_seed_prompt_copy_and_sample():
    a = row_keys([[5, 6], [7], [5, 6]], 2, seed=1).tolist()
    assert len(a) == 6 and len({tuple(k) for k in a}) == 6  # the second copy of [5, 6] differs from the first
    assert row_keys([[5, 6]], 2, seed=1).tolist() == a[:2]  # the first copy alone: same keys
    assert row_keys([[5, 6]], 2, seed=2).tolist() != a[:2]
