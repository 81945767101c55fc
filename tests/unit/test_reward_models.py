"""Reward heads: hand-computed losses, a training step that moves the weights, save/load, the scorer's contracts
(and no raising on garbage), aggregation modes, and the AUC / first-error metrics."""

import math

import pytest
import torch

from searchlearn.learn.losses import bce_loss, bradley_terry_loss, mse_loss
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.reward.aggregate import aggregate
from searchlearn.reward.labels import StepLabels
from searchlearn.reward.learned import LearnedScorer
from searchlearn.reward.models import (
    RewardModel,
    RewardTrainConfig,
    encode_steps,
    loss_of,
    make_examples,
    train_reward,
)
from searchlearn.reward.quality import auc, first_error
from searchlearn.reward.scorers import make_scorer
from searchlearn.tasks.countdown import WORDS, CountdownTask
from searchlearn.types import Problem

TASK = CountdownTask()
P = Problem("p", "3 7 25 -> 46\n", {"nums": [3, 7, 25], "target": 46})
TOK = TaskTokenizer(WORDS, digits=True)


def policy_model():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                        bos_token_id=TOK.bos_id, eos_token_id=TOK.eos_id, pad_token_id=TOK.pad_id))


def labels():
    return [StepLabels(P, ["7*3=21 | 25 21\n", "25+21=46 vs 46 yes\n"], hard=[1.0, 1.0], soft=[0.75, 1.0], outcome=1.0),
            StepLabels(P, ["25-7=18 | 3 18\n"], hard=[0.0], soft=[0.0], outcome=0.0)]


def test_bradley_terry_loss_hand_computed():
    loss, stats = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0]))
    want = (-math.log(1 / (1 + math.exp(-1.0))) - math.log(1 / (1 + math.exp(1.0)))) / 2  # diffs +1 and −1
    assert loss.item() == pytest.approx(want) and stats["accuracy"] == 0.5


def test_bce_with_soft_labels_and_mse_hand_computed():
    loss, _ = bce_loss(torch.tensor([0.0, math.log(3.0)]), torch.tensor([0.25, 1.0]))
    assert loss.item() == pytest.approx((math.log(2.0) + -math.log(0.75)) / 2)  # σ(0) = ½ whatever y; σ(ln 3) = ¾
    assert mse_loss(torch.tensor([0.5, 1.0]), torch.tensor([0.0, 0.0]))[0].item() == pytest.approx(0.3125)


def test_aggregation_modes_on_a_fixed_score_list():
    s = [0.9, 0.5, 0.8]
    assert aggregate(s, "last") == 0.8 and aggregate(s, "min") == 0.5
    assert aggregate(s, "prod") == pytest.approx(0.36) and aggregate(s, "mean") == pytest.approx(2.2 / 3)


def test_examples_put_labels_at_step_ends():
    ids, ends = encode_steps(TOK, P.prompt, ["7*3=21 | 25 21\n", "ab\n"])
    assert TOK.decode(ids[ends[0]:ends[0] + 1]) == "\n" and ends[1] == len(ids) - 1
    prm = make_examples(TOK, labels(), "prm", "soft")
    assert [e.targets for e in prm] == [[0.75, 1.0], [0.0]] and len(prm[0].positions) == 2
    orm = make_examples(TOK, labels(), "orm")
    assert [e.targets for e in orm] == [[1.0], [0.0]] and orm[0].positions == [len(orm[0].ids) - 1]


@pytest.mark.parametrize("kind", ["prm", "orm", "value"])
def test_a_training_step_changes_the_head_and_lowers_the_loss(kind):
    model = RewardModel(policy_model(), kind)
    data = make_examples(TOK, labels(), kind, "soft")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss0 = loss_of(model, data, TOK.pad_id)[0].item()
    train_reward(model, data, RewardTrainConfig(steps=15, batch_size=2, lr=3e-3, warmup_steps=0), TOK.pad_id)
    after = model.state_dict()
    assert not torch.equal(before["body.net.lm_head.weight"], after["body.net.lm_head.weight"])
    assert any(not torch.equal(before[k], after[k]) for k in before if ".layers." in k)  # the backbone learns too
    assert loss_of(model, data, TOK.pad_id)[0].item() < loss0


def test_ppm_trains_on_pairs():
    from searchlearn.reward.labels import Pair
    from searchlearn.reward.models import make_pair_examples

    model = RewardModel(policy_model(), "ppm")
    pairs = make_pair_examples(TOK, [Pair(P, (), "7*3=21 | 25 21\n", "25-7=18 | 3 18\n", 1.0)])
    train_reward(model, pairs, RewardTrainConfig(steps=10, batch_size=1, lr=3e-3, warmup_steps=0), TOK.pad_id)
    scores = LearnedScorer(model, TOK, TASK)([P, P], ["7*3=21 | 25 21\n", "25-7=18 | 3 18\n"])
    assert scores[0][0] > scores[1][0]


def test_policy_weights_are_not_touched_by_default():
    base = policy_model()
    ref = {k: v.clone() for k, v in base.state_dict().items()}
    model = RewardModel(base, "prm")
    train_reward(model, make_examples(TOK, labels(), "prm"), RewardTrainConfig(steps=3, batch_size=2), TOK.pad_id)
    assert all(torch.equal(ref[k], v) for k, v in base.state_dict().items())


def test_scorer_contracts_save_load_and_garbage(tmp_path):
    model = RewardModel(policy_model(), "prm")
    with torch.no_grad():
        model.body.net.lm_head.bias.fill_(0.3)
    model.save(tmp_path / "rm", TOK, {"aggregate": "min", "name": "prm_soft"})
    scorer = make_scorer(f"learned:{tmp_path / 'rm'}", TASK)
    assert isinstance(scorer, LearnedScorer) and scorer.how == "min"
    texts = ["7*3=21 | 25 21\n25+21=46 vs 46 yes\n", "", "\x00☃ garbage )(\n((("]
    process = scorer([P] * 3, texts)
    assert [len(s) for s in process] == [2, 0, 2] and all(0.0 <= v <= 1.0 for s in process for v in s)
    fresh = LearnedScorer(model, TOK, TASK)([P], texts[:1])[0]
    assert process[0] == pytest.approx(fresh, abs=1e-6)  # the round trip keeps the weights
    outcome = scorer.outcome([P] * 3, texts)
    assert outcome[1] is None and outcome[0] == pytest.approx(min(process[0]))
    assert scorer.ledger.reward_tokens > 0
    assert scorer.value([P], [""])[0] == pytest.approx(1 / (1 + math.exp(-0.3)), abs=0.2)  # the prompt alone


def test_auc_hand_example_with_a_tie():
    # positives 0.9, 0.4; negatives 0.4, 0.1: pairs (0.9>0.4) (0.9>0.1) (0.4=0.4 → ½) (0.4>0.1) = 3.5 / 4
    assert auc([0.9, 0.4, 0.4, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert auc([0.1, 0.9], [1, 0]) == 0.0 and auc([0.5], [1]) is None


def test_first_error_accuracy():
    gold = [[1, 0, 0], [1, 1], [0, 1]]
    scores = [[0.9, 0.2, 0.1], [0.9, 0.3], [0.8, 0.9]]  # right; wrongly flags step 1; misses step 0
    r = first_error(scores, gold)
    assert r["first_error_acc"] == pytest.approx(1 / 3)
    assert r["first_error_acc_erroneous"] == 0.5 and r["first_error_acc_correct"] == 0.0 and r["first_error_f1"] == 0


def test_gap_closed_by_hand():
    from searchlearn.reward.pipeline import gap_closed

    result = {"_data": {"samples": 16, "pass@16": 0.6, "maj@16": 0.1}, "selfeval": {"rerank@16": 0.3},
              "worse": {"rerank@16": 0.05}}
    assert gap_closed(result, "selfeval") == pytest.approx(0.4)  # (0.3 − 0.1) / (0.6 − 0.1)
    assert gap_closed(result, "worse") == pytest.approx(-0.1)
    result["_data"]["pass@16"] = 0.1  # no gap between voting and the oracle
    assert gap_closed(result, "selfeval") is None
