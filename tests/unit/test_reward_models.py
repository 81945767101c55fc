"""Reward heads: hand-computed losses, a training step that moves the weights, save/load, the scorer's contracts
(and no raising on garbage), aggregation modes, and the AUC / first-error metrics."""

import math

import pytest
import torch

from searchlearn.learn.losses import bce_loss, bradley_terry_loss, mse_loss
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM, sequence_logprobs
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.reward.aggregate import aggregate
from searchlearn.reward.labels import StepLabels
from searchlearn.reward.learned import LearnedScorer
from searchlearn.reward.models import (
    RewardModel,
    RewardTrainConfig,
    encode_steps,
    held_out_loss,
    loss_of,
    make_examples,
    train_reward,
)
from searchlearn.policy.policy import LocalPolicy
from searchlearn.reward.pipeline import (
    fit,
    label_agreement,
    label_solutions,
    split_by_problem,
    with_gold_labels,
    within_problem_auc,
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


def two_block_model():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        bos_token_id=TOK.bos_id, eos_token_id=TOK.eos_id, pad_token_id=TOK.pad_id))


@pytest.mark.parametrize("backbone, moved", [("frozen", set()), ("last:1", {"layers.1", "norm"}),
                                             ("full", {"embed_tokens", "layers.0", "layers.1", "norm"})])
def test_backbone_setting_decides_which_weights_train(backbone, moved):
    """The head always trains; a frozen backbone stays bit-identical; last:1 moves only the last block and the norm."""
    model = RewardModel(two_block_model(), "prm")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_reward(model, make_examples(TOK, labels(), "prm"), RewardTrainConfig(steps=3, batch_size=2, lr=1e-2,
                                                                               backbone=backbone), TOK.pad_id)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert {k for k in changed if "lm_head" in k} == {"body.net.lm_head.weight", "body.net.lm_head.bias"}
    names = [k.removeprefix("body.net.model.").split(".") for k in changed if "lm_head" not in k]
    assert {".".join(n[:2]) if n[0] == "layers" else n[0] for n in names} == moved
    assert all(p.requires_grad for p in model.parameters())  # training leaves nothing frozen behind


def test_unknown_backbone_setting_is_an_error():
    with pytest.raises(ValueError, match="full, frozen or last:K"):
        RewardTrainConfig(backbone="last:x")
    with pytest.raises(ValueError, match="1 <= K <= 2"):
        train_reward(RewardModel(two_block_model(), "prm"), make_examples(TOK, labels(), "prm"),
                     RewardTrainConfig(steps=1, backbone="last:3"), TOK.pad_id)


def test_early_stopping_ends_with_the_lowest_held_out_loss():
    """Held-out examples with the opposite labels: training on the others raises their loss, so the best is the
    start (step 0) and the model ends there, with the loss it reports."""
    model = RewardModel(two_block_model(), "prm")
    train = make_examples(TOK, labels(), "prm")
    flipped = [StepLabels(r.problem, r.steps, [1 - h for h in r.hard], [1 - s for s in r.soft], 1 - r.outcome)
               for r in labels()]
    held = make_examples(TOK, flipped, "prm")
    start = held_out_loss(model, held, TOK.pad_id)
    stats = train_reward(model, train, RewardTrainConfig(steps=20, batch_size=2, lr=1e-2, eval_every=5),
                         TOK.pad_id, held_out=held)
    assert stats["best_step"] == 0 and stats["held_out_loss"] == pytest.approx(start)
    assert held_out_loss(model, held, TOK.pad_id) == pytest.approx(start, abs=1e-6)


def test_held_out_split_keeps_problems_apart_and_gold_labels_replace_mc():
    problems = [Problem(f"p{i}", P.prompt, P.data) for i in range(10)]
    rows = [StepLabels(p, ["7*3=21 | 25 21\n"], [1.0], [0.5], 0.0) for p in problems for _ in range(3)]
    train, held = split_by_problem(rows, 0.3, seed=1)
    assert len(held) == 9 and len(train) == 21
    assert not {r.problem.id for r in train} & {r.problem.id for r in held}
    gold = with_gold_labels(labels(), TASK)
    # 7*3=21 then 25+21=46 solves it: every step good; 25-7=18 leaves 3 18, which cannot reach 46
    assert [g.soft for g in gold] == [[1.0, 1.0], [0.0]] and [g.hard for g in gold] == [[1.0, 1.0], [0.0]]
    assert [g.outcome for g in gold] == [r.outcome for r in labels()]


def test_implicit_prm_q_is_beta_times_the_running_log_ratio(tmp_path):
    """q_t = β Σ_{start ≤ i ≤ t} log πφ(x_i|x_<i) − log πref(x_i|x_<i): zero while πφ = πref and before the completion;
    by hand against the two models' own log-probs once πφ moves; scores survive save/load with β."""
    tied = policy_model()
    tied.config.tie_word_embeddings = True
    tied.tie_weights()  # as the demo's policy: the LM head is the embedding (saved once)
    model = RewardModel(tied, "implicit", beta=0.5)
    ex = make_examples(TOK, labels(), "orm")[0]
    ids = torch.tensor([ex.ids])
    assert torch.equal(model(ids, starts=torch.tensor([ex.start])), torch.zeros(1, len(ex.ids)))
    with torch.no_grad():
        for p in model.body.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    q = model(ids, starts=torch.tensor([ex.start]))[0]  # (T,)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        ratio = (sequence_logprobs(model.body.net, ids, mask) - sequence_logprobs(model.body.ref, ids, mask))[0]
    want = [0.0] * ex.start + [0.5 * float(ratio[ex.start - 1 : t].sum()) for t in range(ex.start, len(ex.ids))]
    assert q.tolist() == pytest.approx(want, abs=1e-5)
    model.save(tmp_path, TOK)
    back = LearnedScorer.load(tmp_path, TASK)
    steps = labels()[0].steps
    direct = LearnedScorer(model, TOK, TASK)([P], ["".join(steps)])[0]
    assert back([P], ["".join(steps)])[0] == pytest.approx(direct) and back.model.body.beta == 0.5
    assert direct == pytest.approx([torch.sigmoid(q[e]).item() for e in encode_steps(TOK, P.prompt, steps)[1]])


def test_implicit_prm_learns_outcomes_from_outcome_labels_only():
    model = RewardModel(policy_model(), "implicit", beta=0.1)
    data = make_examples(TOK, labels(), "orm")
    train_reward(model, data, RewardTrainConfig(steps=15, batch_size=2, lr=3e-3), TOK.pad_id)
    ends = [model(torch.tensor([e.ids]), starts=torch.tensor([e.start]))[0, e.positions[-1]].item() for e in data]
    assert ends[0] > 0.3 and ends[1] < -0.3  # the solved solution's q rose, the failed one's fell
    assert all(not p.requires_grad for p in model.body.ref.parameters())  # πref stays frozen after training


def test_outcome_labels_without_rollouts_serve_outcome_heads_only():
    policy = LocalPolicy(policy_model(), TOK)
    problems = [Problem(f"p{i}", P.prompt, P.data) for i in range(3)]
    rows = label_solutions(policy, TASK, problems, samples=2, rollouts=0, max_new_tokens=12, seed=0)
    assert len(rows) == 6 and all(r.hard == [] and r.soft == [] for r in rows)  # no step labels, no rollouts
    assert [r.outcome for r in rows] == [TASK.verify(r.problem, r.completion).score for r in rows]
    assert label_agreement(rows, TASK)["soft_auc"] is None
    with pytest.raises(ValueError, match="needs step labels"):
        fit(policy, rows, "prm", "soft", RewardTrainConfig(steps=1))
    _, stats = fit(policy, rows, "orm", "soft", RewardTrainConfig(steps=1, batch_size=2))
    assert stats["examples"] == sum(bool(r.steps) for r in rows)
    with pytest.raises(ValueError, match="rollouts"):
        label_solutions(policy, TASK, problems, samples=1, rollouts=-1, max_new_tokens=4, seed=0)


def test_within_problem_auc_by_hand():
    """Problem 1 ranks its right sample first (1.0), problem 2 has no wrong sample (left out), problem 3 ranks its
    wrong one first (0.0): mean 0.5."""
    scores = [0.9, 0.1, 0.5, 0.5, 0.2, 0.8]
    correct = [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert within_problem_auc(scores, correct, 2) == pytest.approx(0.5)
    assert within_problem_auc([0.3, 0.3], [1.0, 1.0], 2) is None
