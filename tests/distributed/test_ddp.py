"""Data-parallel SFT on 2 gloo ranks placed by Ray: the same gradients, losses and weights as one process on the
same global batches; one checkpoint, written by rank 0, that resumes."""

import pytest
import torch
from conftest import tiny_model

from searchlearn.distributed.ddp import all_sum, my_rows, rank_world, sum_gradients
from searchlearn.learn.checkpoint import exists
from searchlearn.learn.sft import SFTConfig, train_sft, train_sft_parallel

PAD = 0


def examples(n: int = 24) -> list:
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        prompt = torch.randint(3, 24, (2 + i % 3,), generator=g).tolist()
        completion = torch.randint(3, 24, (3 + i % 5,), generator=g).tolist()
        out.append((prompt, completion))
    return out


CFG = SFTConfig(steps=3, batch_size=8, lr=1e-2, warmup_steps=0, log_every=1, checkpoint_every=0, length_buckets=1)


def test_without_a_process_group_every_helper_is_the_identity():
    assert rank_world() == (0, 1) and my_rows(10) == slice(0, 10) and all_sum(2.5) == 2.5
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.tensor([1.0, 2.0])
    sum_gradients([p])
    assert p.grad.tolist() == [1.0, 2.0]


def test_two_ranks_train_as_one_process_on_the_global_batch(ray_cluster, tmp_path):
    data = examples()
    one, records_one = tiny_model(), []
    train_sft(one, data, CFG, PAD, log=records_one.append)
    two, records_two = tiny_model(), []
    train_sft_parallel(2, two, data, CFG, PAD, tmp_path / "ckpt", log=records_two.append)
    assert len(records_two) == CFG.steps  # rank 0's records only
    for a, b in zip(records_one, records_two):
        assert b["learn/tokens"] == a["learn/tokens"]  # the global batch's tokens, summed over the ranks
        assert b["learn/grad_norm"] == pytest.approx(a["learn/grad_norm"], rel=1e-6)  # first step: the same gradient
        assert b["learn/loss"] == pytest.approx(a["learn/loss"], rel=1e-6)
    for (name, p), q in zip(one.named_parameters(), two.parameters()):
        assert torch.allclose(p, q, atol=1e-5), name
    assert exists(tmp_path / "ckpt")  # written once, by rank 0
    resumed = tiny_model()
    again = train_sft_parallel(2, resumed, data, CFG, PAD, tmp_path / "ckpt")
    assert again["steps"] == CFG.steps  # nothing left to do: every rank resumed at the last step
    assert all(torch.equal(p, q) for p, q in zip(two.parameters(), resumed.parameters()))
