import math

import pytest
import torch
from conftest import tiny_model

from searchlearn.learn.dpo import (
    DPOConfig,
    PreferencePair,
    pair_logprobs,
    solution_pairs,
    step_pairs,
    tokenize_pairs,
    train_dpo,
)
from searchlearn.learn.losses import ipo_loss
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.types import Ledger, SearchResult, SearchTree, Step, Trajectory

PAD = 0


def toy_pairs(n=32):
    # prompt [1, 3+a]: continuing with a+5 is preferred to a+6
    return [([1, 3 + a % 8], [5 + a % 8, 2], [6 + a % 8, 2]) for a in range(n)]


def hand_tree():
    tree = SearchTree("p0")
    a = tree.add(0, Step("3+4=7\n"))
    b = tree.add(0, Step("3*4=12\n"))
    c = tree.add(0, Step("4-3=1\n", score=0.9))  # never visited: ranked by its step score
    d = tree.add(a, Step("answer 3+4\n"))
    e = tree.add(a, Step("7+7=14\n"))
    tree.add(b, Step("12-4=8\n"))  # an only child: no pair
    for node, visits, value_sum in ((a, 2, 1.5), (b, 4, 1.0), (d, 1, 1.0), (e, 1, 0.0)):
        tree.nodes[node].visits, tree.nodes[node].value_sum = visits, value_sum
    tree.nodes[d].terminal = True
    return tree, (a, b, c, d, e)


def test_step_pairs_from_a_hand_built_tree():
    tree, _ = hand_tree()
    pairs = step_pairs(tree, "3 4 -> 7\n")
    # root: Q(a)=0.75, Q(b)=0.25, score(c)=0.9 → (c,b) 0.65, (a,b) 0.5, (c,a) 0.15; node a: (d,e) 1.0
    got = [(p.prompt, p.chosen, p.rejected, p.chosen_ends, p.rejected_ends, round(p.margin, 6)) for p in pairs]
    assert got == [
        ("3 4 -> 7\n", "4-3=1\n", "3*4=12\n", False, False, 0.65),
        ("3 4 -> 7\n", "3+4=7\n", "3*4=12\n", False, False, 0.5),
        ("3 4 -> 7\n", "4-3=1\n", "3+4=7\n", False, False, 0.15),
        ("3 4 -> 7\n3+4=7\n", "answer 3+4\n", "7+7=14\n", True, False, 1.0),
    ]
    assert all(p.problem_id == "p0" for p in pairs)
    assert [p.margin for p in step_pairs(tree, "", min_margin=0.6)] == pytest.approx([0.65, 1.0])
    assert len(step_pairs(tree, "", max_pairs_per_node=1)) == 2
    only_q = step_pairs(tree, "", value=lambda n: n.value if n.visits else None)  # Q-values only: c is skipped
    assert [(p.chosen, p.rejected) for p in only_q] == [("3+4=7\n", "3*4=12\n"), ("answer 3+4\n", "7+7=14\n")]


def test_solution_pairs_and_tokenization():
    def traj(text, reward):
        return Trajectory("p0", "3 4 -> 7\n", text, reward=reward)

    result = SearchResult("p0", None, [traj("answer 3+4\n", 1.0), traj("answer 3*4\n", 0.0),
                                       traj("answer 3+4\n", 1.0), traj("answer 4-3\n", 0.0),
                                       traj("junk", None)], Ledger())
    pairs = solution_pairs([result], max_pairs_per_problem=10)
    assert sorted((p.chosen, p.rejected) for p in pairs) == [("answer 3+4\n", "answer 3*4\n"),
                                                               ("answer 3+4\n", "answer 4-3\n")]
    assert len(solution_pairs([result], max_pairs_per_problem=1)) == 1
    all_right = SearchResult("p1", None, [traj("answer 3+4\n", 1.0)], Ledger())
    assert solution_pairs([all_right]) == []

    tok = TaskTokenizer(words=("answer",), max_number=20)
    (prompt, chosen, rejected), = tokenize_pairs([PreferencePair("3 4 -> 7\n", "3+4=7\n", "answer 3\n", False, True)],
                                                 tok)
    assert prompt == [tok.bos_id] + tok.encode("3 4 -> 7\n")
    assert chosen == tok.encode("3+4=7\n") and rejected == tok.encode("answer 3\n") + [tok.eos_id]


def test_pair_logprobs_sum_completion_tokens_only():
    model = tiny_model()
    pairs = toy_pairs(3)
    chosen, rejected = pair_logprobs(model, pairs, PAD)
    logits = model(torch.tensor([pairs[0][0] + pairs[0][1]])).log_softmax(-1)[0]  # (T, V)
    expected = logits[1, pairs[0][1][0]] + logits[2, pairs[0][1][1]]  # the two completion tokens
    assert chosen[0].item() == pytest.approx(expected.item(), abs=1e-5)
    assert chosen.shape == rejected.shape == (3,)


def test_train_dpo_learns_the_preference():
    model = tiny_model()
    records = []
    cfg = DPOConfig(steps=40, batch_size=8, lr=1e-2, warmup_steps=2, beta=0.5, log_every=1)
    stats = train_dpo(model, toy_pairs(), cfg, PAD, log=records.append)
    assert records[0]["learn/loss"] == pytest.approx(math.log(2), abs=1e-5)  # π = π_ref at the first step: h = 0
    assert stats["loss"] < 0.2 and stats["accuracy"] == 1.0
    ipo = train_dpo(tiny_model(), toy_pairs(), DPOConfig(steps=20, batch_size=8, lr=1e-2, beta=0.5), PAD,
                    loss_fn=ipo_loss)
    assert ipo["loss"] < 1.0  # started at (0 − 1/(2·0.5))² = 1


def test_dpo_kill_and_resume(tmp_path):
    cfg = DPOConfig(steps=12, batch_size=4, lr=5e-3, warmup_steps=2, checkpoint_every=4, sft_coef=0.1)
    straight = tiny_model()
    train_dpo(straight, toy_pairs(), cfg, PAD)
    interrupted = tiny_model()
    train_dpo(interrupted, toy_pairs(), cfg, PAD, ckpt_dir=tmp_path / "ck", stop_after=7)
    resumed = tiny_model(seed=3)  # the reference log-probs must come from the checkpoint, not this model
    assert train_dpo(resumed, toy_pairs(), cfg, PAD, ckpt_dir=tmp_path / "ck")["steps"] == 12
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
