import math

import pytest
import torch
from conftest import tiny_model

from searchlearn.learn.data import batch_indices
from searchlearn.learn.losses import sft_loss
from searchlearn.learn.sft import SFTConfig, collate, trace_example, train_sft
from searchlearn.learn.trainer import learning_rate
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.tasks.countdown import CountdownTask

PAD = 0


def toy_examples(n=64):
    # prompt [1, a], completion [a+2, a+3, 2(eos)]: a learnable pattern
    return [([1, 3 + a % 10], [5 + a % 10, 6 + a % 10, 2]) for a in range(n)]


def test_sft_loss_hand_computed():
    V = 4
    logits = torch.zeros(1, 3, V)  # uniform: NLL = log 4 at every position
    logits[0, 2, 1] = 100.0  # a confident, correct prediction at position 2: NLL ≈ 0
    targets = torch.tensor([[0, 3, 1]])
    mask = torch.tensor([[0, 1, 1]])
    loss, stats = sft_loss(logits, targets, mask)
    assert loss.item() == pytest.approx(math.log(4) / 2, abs=1e-6)
    assert stats["tokens"] == 2


def test_learning_rate_warmup_and_cosine():
    cfg = SFTConfig(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(0, cfg) == pytest.approx(0.1)
    assert learning_rate(9, cfg) == pytest.approx(1.0)
    assert learning_rate(10, cfg) == pytest.approx(1.0)
    assert learning_rate(60, cfg) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the cosine
    assert learning_rate(110, cfg) == pytest.approx(0.1)


def test_batches_are_seeded_epochs():
    cfg = SFTConfig(batch_size=4, seed=1)
    first_epoch = [i for s in range(3) for i in batch_indices(12, s, cfg)]
    assert sorted(first_epoch) == list(range(12))  # every example once per epoch
    assert (batch_indices(12, 5, cfg) == batch_indices(12, 5, cfg)).all()
    assert not all((batch_indices(12, s, cfg) == batch_indices(12, s, SFTConfig(batch_size=4, seed=2))).all()
                   for s in range(3))


def test_length_buckets_regroup_the_same_examples_with_less_padding():
    lengths = [1 + (i * 7) % 13 for i in range(40)]
    plain, bucketed = SFTConfig(batch_size=4, seed=3, length_buckets=1), SFTConfig(batch_size=4, seed=3)
    a = [batch_indices(40, s, plain, lengths) for s in range(8)]  # one group of 8 batches
    b = [batch_indices(40, s, bucketed, lengths) for s in range(8)]
    assert sorted(i for x in a for i in x) == sorted(i for x in b for i in x)
    pad = lambda batches: sum(len(x) * max(lengths[i] for i in x) - sum(lengths[i] for i in x) for x in batches)
    assert pad(b) < pad(a)
    assert [x.tolist() for x in b] == [batch_indices(40, s, bucketed, lengths).tolist() for s in range(8)]


def test_collate_masks_completion_only():
    inputs, targets, mask = collate([([1, 7], [8, 2]), ([1, 7, 9], [2])], pad_id=PAD)
    assert inputs.tolist() == [[1, 7, 8], [1, 7, 9]]
    assert targets.tolist() == [[7, 8, 2], [7, 9, 2]]
    assert mask.tolist() == [[False, True, True], [False, False, True]]


def test_collate_leaves_untrained_completion_tokens_out():
    examples = [([1, 5], [6, 7, 8, 2], [True, False, True, True])]  # token 7 (a self-correction's slip) untrained
    _, targets, mask = collate(examples, pad_id=0)
    assert targets[0].tolist() == [5, 6, 7, 8, 2]
    assert mask[0].tolist() == [False, True, False, True, True]


def test_trace_example_encodes_segments_as_the_whole_text():
    tok = TaskTokenizer(words=CountdownTask().words, digits=True)
    segments = [("try 9: need 8 26 - - - 153 | 4 2 -> 6", True), (" 8", False), (" yes\n", True)]
    prompt, completion, trained = trace_example(tok, "4 9 2 -> 17\n", segments)
    assert prompt == [tok.bos_id] + tok.encode("4 9 2 -> 17\n")
    assert completion == tok.encode("".join(t for t, _ in segments)) + [tok.eos_id]
    untrained = [tok.decode([i]) for i, keep in zip(completion, trained) if not keep]
    assert untrained == [" ", "8"] and len(trained) == len(completion)


def test_sft_loss_falls_on_a_tiny_run():
    model = tiny_model()
    records = []
    cfg = SFTConfig(steps=60, batch_size=16, lr=1e-2, warmup_steps=5, log_every=10)
    train_sft(model, toy_examples(), cfg, PAD, log=records.append)
    assert records[-1]["learn/loss"] < 0.5 * records[0]["learn/loss"]


def test_kill_and_resume_gives_the_same_weights(tmp_path):
    cfg = SFTConfig(steps=30, batch_size=8, lr=5e-3, warmup_steps=5, checkpoint_every=10)
    straight = tiny_model()
    train_sft(straight, toy_examples(), cfg, PAD)

    interrupted = tiny_model()
    train_sft(interrupted, toy_examples(), cfg, PAD, ckpt_dir=tmp_path / "ck", stop_after=17)
    resumed = tiny_model(seed=99)  # a fresh process: different init, weights come from the checkpoint
    stats = train_sft(resumed, toy_examples(), cfg, PAD, ckpt_dir=tmp_path / "ck")
    assert stats["steps"] == 30
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(tiny_model().state_dict()["lm_head.weight"], resumed.state_dict()["lm_head.weight"])
