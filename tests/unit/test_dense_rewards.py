"""Dense process rewards for the online learners (learn/dense_rewards.py): hand-computed shaping terms and step
advantages on hand-built rollouts, and GRPO learning from them where the outcome alone gives no signal."""

import pytest
import torch
from conftest import tiny_model

from searchlearn.learn.advantages import step_gae
from searchlearn.learn.dense_rewards import PotentialShaping
from searchlearn.learn.grpo import GRPOConfig, train_grpo
from searchlearn.learn.rollout import Rollout
from searchlearn.loop.learners import round_rewards
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.tasks.countdown_rules import steps as line_steps
from searchlearn.tasks.registry import DEFAULT_TASK, DefaultTaskConfig
from searchlearn.types import Completion, Problem

TOK = TaskTokenizer(words=(), max_number=20)
PROBLEMS = [Problem(f"p{i}", f"{i} {i + 1} -> {2 * i + 1}\n") for i in range(8)]


def tiny_policy(seed=0):
    return LocalPolicy(tiny_model(seed, TOK.vocab_size), TOK)


class Lines:
    """A task that only splits completions into lines."""

    name = "lines"

    def steps(self, text):
        return line_steps(text)


class Table:
    """A process scorer from a table: step text -> score."""

    def __init__(self, table):
        self.table = table

    def __call__(self, problems, prefixes):
        return [[self.table[s] for s in line_steps(text)] for text in prefixes]


TWO_STEPS, ONE_STEP = "3+4=7\n7*2=14\n", "3+4=7\n"  # 12 tokens (steps end at tokens 5 and 11); 6 tokens


def rollout(rewards=(1.0, 0.0)):
    """One problem, a group of two: the two-step solution and the one-step one, both ended by EOS; prompt 2 tokens."""
    completions = [Completion(0, TOK.encode(t), t, [0.0] * len(TOK.encode(t)), "eos") for t in (TWO_STEPS, ONE_STEP)]
    scores = torch.tensor([rewards])
    return Rollout([PROBLEMS[0]], completions, [[1, 5]] * 2, [c.token_ids + [TOK.eos_id] for c in completions],
                   scores, scores.clone(), pad_id=TOK.pad_id)


def shaping(coef=1.0, lam=1.0):
    return PotentialShaping(Table({"3+4=7\n": 0.9, "7*2=14\n": 1.0}), Lines(), TOK.decode, coef, lam)


def test_step_gae_by_hand():
    V = [0.5, 0.8, 0.2]  # V(s_0), V(s_1), V(s_2); V(s_3) = 0, R = 1 with the last step
    assert step_gae(1.0, V, lam=1.0) == pytest.approx([0.5, 0.2, 0.8])  # R − V(s_k)
    assert step_gae(1.0, V, lam=0.0) == pytest.approx([0.3, -0.6, 0.8])  # δ_k = V(s_{k+1}) − V(s_k) (+ R at the end)
    assert step_gae(1.0, V, lam=0.5) == pytest.approx([0.3 - 0.1, -0.6 + 0.4, 0.8])
    with pytest.raises(ValueError):
        step_gae(1.0, V, lam=1.5)


def test_ppo_shaping_terms_sit_on_step_ends_and_telescope_to_zero():
    r = rollout()
    dense = shaping(coef=0.5).token_rewards(r)
    assert dense.shape == r.batch.action_mask.shape
    first = 1  # column scoring the first completion token (prompt of 2)
    # two steps: Φ = 0, 0.5·0.9, then 0 at the end: +0.45 where step 0 ends, −0.45 where step 1 ends
    assert dense[0, first + 5].item() == pytest.approx(0.45) and dense[0, first + 11].item() == pytest.approx(-0.45)
    assert dense[0].abs().sum().item() == pytest.approx(0.9)
    assert dense[1].abs().sum().item() == 0.0  # one step: Φ(s_0) = Φ(s_1) = 0, nothing to shape


def test_grpo_step_advantages_by_hand():
    r = rollout()
    outcome = torch.tensor([[0.5, -0.5]])  # Dr. GRPO's R − mean_g R
    mask = r.batch.action_mask
    first = 1
    adv = shaping(lam=1.0).token_advantages(r, outcome)
    # row 0: V = [0.5, 0.9], R = 1 → GAE = [0.5, 0.1]; the correction GAE − (R − 0.5) = [0, −0.4]
    assert adv[0, first : first + 6].tolist() == pytest.approx([0.5] * 6)  # step 0
    assert adv[0, first + 6 : first + 13].tolist() == pytest.approx([0.1] * 7)  # step 1 and the EOS
    assert adv[1, first : first + 7].tolist() == pytest.approx([-0.5] * 7)  # one step: V(s_0) only, no change
    assert (adv * (1 - mask)).abs().sum() == 0  # nothing off the actions
    dense = shaping(lam=0.0).token_advantages(r, outcome)  # δ_0 = 0.9 − 0.5 = 0.4, δ_1 = 1 − 0.9 = 0.1
    assert dense[0, first].item() == pytest.approx(0.4) and dense[0, first + 12].item() == pytest.approx(0.1)
    half = shaping(coef=0.5, lam=1.0).token_advantages(r, outcome)  # V(s_1) = 0.5·0.5 + 0.5·0.9 = 0.7
    assert half[0, first + 6].item() == pytest.approx(1 - 0.7)


def test_no_weight_gives_the_recipes_advantages():
    r = rollout()
    outcome = torch.tensor([[0.7, -0.7]])
    adv = shaping(coef=0.0, lam=1.0).token_advantages(r, outcome)
    assert torch.allclose(adv, outcome.reshape(-1, 1) * r.batch.action_mask)


def test_a_group_that_agrees_gets_credit_from_the_values():
    r = rollout(rewards=(1.0, 1.0))  # both right: the outcome advantage is 0
    adv = shaping().token_advantages(r, torch.zeros(1, 2))
    assert adv[0, 1].item() == 0.0  # step 0: R − mean = 0
    assert adv[0, 1 + 6].item() == pytest.approx(1 - 0.9)  # step 1: R − Φ(s_1), positive


def test_a_scorer_that_splits_otherwise_is_refused():
    bad = PotentialShaping(lambda problems, prefixes: [[0.5] for _ in prefixes], Lines(), TOK.decode)
    with pytest.raises(ValueError, match="1 scores for 2 steps"):
        bad.token_advantages(rollout(), torch.zeros(1, 2))


class Lengths:
    """Scores every line by its length: values that differ between samples whatever the outcome."""

    def __call__(self, problems, prefixes):
        return [[min(1.0, len(s) / 8) for s in line_steps(text)] for text in prefixes]


def test_grpo_learns_from_the_values_when_every_outcome_ties():
    def nothing(problems, completions):
        return [0.0] * len(completions)

    cfg = GRPOConfig(steps=2, prompts_per_step=4, group_size=4, max_new_tokens=12, lr=1e-2, seed=0)
    plain, shaped = tiny_policy(), tiny_policy()
    before = {k: v.clone() for k, v in shaped.model.state_dict().items()}
    records_plain, records_shaped = [], []
    train_grpo(plain, PROBLEMS, cfg, nothing, log=records_plain.append)
    dense = PotentialShaping(Lengths(), Lines(), TOK.decode, coef=1.0, lam=0.5)
    train_grpo(shaped, PROBLEMS, cfg, nothing, log=records_shaped.append, shaping=dense)
    assert [r["learn/updates"] for r in records_plain] == [0, 0]  # no outcome signal: plain GRPO skips
    assert all(r["learn/updates"] > 0 for r in records_shaped)
    assert any(not torch.equal(before[k], v) for k, v in shaped.model.state_dict().items())


def test_the_loop_takes_its_potential_from_the_phase_scorer():
    task = DEFAULT_TASK.build(DefaultTaskConfig())
    rewards = round_rewards("gold", task)
    policy = tiny_policy()
    assert rewards.shaping(policy, GRPOConfig(shaping=0.0)) is None
    built = rewards.shaping(policy, GRPOConfig(shaping=0.5, shaping_lam=0.3))
    assert (built.coef, built.lam, type(built.scorer).__name__) == (0.5, 0.3, "GoldScorer")
    with pytest.raises(ValueError, match="shaping"):
        GRPOConfig(shaping=1.5)


def test_ppo_returns_move_by_the_shaping_still_to_come():
    """With γ = λ = 1, PPO's returns are reward-to-go: shaping adds Σ_{s≥t} of its terms, which telescopes to 0 from
    the first token (the return of the whole solution is unchanged) and to −Φ(s_1) inside step 1."""
    from searchlearn.learn.ppo import PPOConfig, prepare
    from searchlearn.policy.heads import ValueModel

    policy, r = tiny_policy(), rollout()
    critic = ValueModel(policy.model)
    cfg = PPOConfig(gamma=1.0, lam=1.0, whiten_advantages=False)
    plain = prepare(policy.model, critic, r, cfg)["returns"]
    shaped = prepare(policy.model, critic, r, cfg, dense_reward=shaping(coef=0.5).token_rewards)["returns"]
    diff = shaped - plain
    assert diff[0, 1].item() == pytest.approx(0.0, abs=1e-6)  # first token: the whole solution's return
    assert diff[0, 1 + 6].item() == pytest.approx(-0.45)  # inside step 1: −Φ(s_1) = −0.5 · 0.9
    assert diff[1].abs().max().item() == pytest.approx(0.0, abs=1e-6)
