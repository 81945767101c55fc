"""Discriminator reward (GAIL/AIRL): labels 1 = expert / 0 = policy, r = log D − log(1 − D) computed by hand from
the head's logit, a D step that moves the head and lowers the BCE, garbage text never raising, config checks, and one
tiny adversarial round end to end."""

import math

import pytest
import torch

from searchlearn.loop.adversarial import adversarial_rounds
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.reward.discriminator import (
    DiscriminatorConfig,
    DiscriminatorReward,
    discriminator_examples,
    imitation_reward,
)
from searchlearn.reward.models import (
    RewardModel,
    RewardTrainConfig,
    encode_steps,
    loss_of,
    train_reward,
)
from searchlearn.tasks.countdown import WORDS, CountdownTask
from searchlearn.types import Problem

TASK = CountdownTask()
P = Problem("p", "3 7 25 -> 46\n", {"nums": [3, 7, 25], "target": 46})
TOK = TaskTokenizer(WORDS, digits=True)
EXPERT = "7*3=21 | 25 21\n25+21=46 vs 46 yes\nanswer (7*3)+25\n"
SAMPLE = "25-7=18 | 3 18\n18*3=54 vs 46 no\n"


def policy_model():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                        bos_token_id=TOK.bos_id, eos_token_id=TOK.eos_id, pad_token_id=TOK.pad_id))


def disc_model():
    model = RewardModel(policy_model(), "orm")
    torch.manual_seed(1)  # a non-zero head: the fresh one is zero, and σ(0) = ½ would hide a wrong position
    torch.nn.init.normal_(model.body.net.lm_head.weight, std=0.5)
    return model


def test_examples_are_labelled_one_for_expert_and_zero_for_policy():
    data = discriminator_examples(TOK, [P, P], [EXPERT, EXPERT], [SAMPLE, ""], TASK.steps)
    assert [e.targets for e in data] == [[1.0], [0.0], [1.0]]  # the empty policy text is skipped
    ids, ends = encode_steps(TOK, P.prompt, TASK.steps(EXPERT))
    assert data[0].ids == ids and data[0].positions == [ends[-1]] == [len(ids) - 1]
    cut = discriminator_examples(TOK, [P], [EXPERT], [SAMPLE], TASK.steps, max_length=10)
    assert all(len(e.ids) == 10 and e.positions == [9] for e in cut)
    with pytest.raises(ValueError):
        discriminator_examples(TOK, [P], [EXPERT], [], TASK.steps)


def test_reward_is_log_d_minus_log_one_minus_d_of_the_heads_logit():
    model = disc_model()
    reward = DiscriminatorReward(model, TOK, TASK)
    got = reward.outcome([P, P], [EXPERT, SAMPLE])
    for text, r in zip([EXPERT, SAMPLE], got):
        ids, ends = encode_steps(TOK, P.prompt, TASK.steps(text))
        with torch.no_grad():
            logit = model(torch.tensor([ids]))[0, ends[-1]].item()
        d = 1 / (1 + math.exp(-logit))
        assert r == pytest.approx(math.log(d) - math.log(1 - d), abs=1e-4)
        assert abs(r) > 1e-3  # a real number, not the zero head
    process = reward([P], [EXPERT])[0]  # process form: the logit at every step end
    ids, ends = encode_steps(TOK, P.prompt, TASK.steps(EXPERT))
    with torch.no_grad():
        row = model(torch.tensor([ids]))[0]
    assert process == pytest.approx([row[e].item() for e in ends], abs=1e-5) and len(process) == 3


def test_garbage_and_empty_text_give_none_or_a_finite_number():
    reward = DiscriminatorReward(disc_model(), TOK, TASK)
    got = reward.outcome([P] * 4, ["", "\u2603\x00 ((( ]] 9999999999\n", "answer\n" * 3, "\n"])
    assert got[0] is None
    assert all(v is None or math.isfinite(v) for v in got)
    mixed = imitation_reward(reward, TASK, verifier_weight=1.0)([P, P], ["", EXPERT])
    f_expert = reward.outcome([P], [EXPERT])[0]
    assert mixed[1] == pytest.approx(f_expert + 1.0)  # the expert's answer is correct: + w · 1
    assert mixed[0] == pytest.approx(f_expert)  # no steps: the batch's lowest D score, not 0, and verifier 0


def test_one_d_step_changes_the_head_and_lowers_the_bce():
    model = disc_model()
    data = discriminator_examples(TOK, [P, P], [EXPERT, EXPERT], [SAMPLE, "3+7=10 | 10 25\n"], TASK.steps)
    head = model.body.net.lm_head.weight.detach().clone()
    loss0 = loss_of(model, data, TOK.pad_id)[0].item()
    train_reward(model, data, RewardTrainConfig(steps=1, batch_size=len(data), lr=1e-3, warmup_steps=0), TOK.pad_id)
    with torch.no_grad():
        loss1 = loss_of(model, data, TOK.pad_id)[0].item()
    assert not torch.equal(head, model.body.net.lm_head.weight) and loss1 < loss0


def test_config_rejects_bad_values():
    for bad in ({"rounds": 0}, {"d_steps": 0}, {"policy_steps": -1}, {"verifier_weight": -0.5}, {"temperature": 0}):
        with pytest.raises(ValueError):
            DiscriminatorConfig(**bad)


def test_two_tiny_rounds_train_d_and_the_policy():
    policy = LocalPolicy(policy_model(), TOK)
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    cfg = DiscriminatorConfig(rounds=2, problems=2, samples=2, d_steps=2, d_batch_size=4, policy_steps=1,
                              prompts_per_step=2, group_size=2, policy_lr=1e-2, max_new_tokens=8)
    records = []
    model, history = adversarial_rounds(policy, TASK, cfg, log=records.append)
    assert [h["round"] for h in history] == [1, 2] and records == history
    assert all(4 <= h["disc/examples"] <= 8 and 0 <= h["disc/accuracy"] <= 1 for h in history)
    assert model.body.net.lm_head.weight.abs().sum() > 0  # D left its zero initialization
    moved = any(not torch.equal(before[k], v) for k, v in policy.model.state_dict().items())
    assert sum(h["policy/updates"] for h in history) > 0 and moved  # D's logits differ within a group: GRPO steps


def test_outcome_auc_of_the_aggregated_score_against_correctness():
    from searchlearn.reward.pipeline import evaluate_scorer

    texts = [EXPERT, SAMPLE, "answer 25+(3*7)\n", ""]
    fixed = {EXPERT: [0.2, 0.5, 0.9], SAMPLE: [0.8, 0.1], texts[2]: [0.5], "": []}
    gold = [[1.0] * 3, [0.0, 0.0], [1.0], []]
    assert [TASK.verify(P, t).correct for t in texts] == [True, False, True, False]
    # last: correct {0.9, 0.5} vs incorrect {0.1, no steps = lowest} → 4 of 4 pairs ordered right
    out = evaluate_scorer(lambda ps, ts: [fixed[t] for t in ts], TASK, [P] * 4, texts, gold, 2, "last")
    assert out["outcome_auc"] == pytest.approx(1.0)
    fixed[SAMPLE] = [0.8, 0.7]  # incorrect now scores 0.7 at the end: last → 0.9 > 0.7 but 0.5 < 0.7 → 3/4
    out = evaluate_scorer(lambda ps, ts: [fixed[t] for t in ts], TASK, [P] * 4, texts, gold, 2, "last")
    assert out["outcome_auc"] == pytest.approx(0.75)
    out = evaluate_scorer(lambda ps, ts: [fixed[t] for t in ts], TASK, [P] * 4, texts, gold, 2, "min")
    assert out["outcome_auc"] == pytest.approx(0.5)  # min: {0.2, 0.5} vs {0.7, none}: 0.2 < 0.7, 0.5 < 0.7 → 2/4
