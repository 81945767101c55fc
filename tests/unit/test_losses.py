import math

import pytest
import torch

from searchlearn.learn.losses import (
    dapo_loss,
    dpo_loss,
    dr_grpo_loss,
    grpo_loss,
    ipo_loss,
    kl_k1,
    kl_k2,
    kl_k3,
    ppo_loss,
    ppo_policy_loss,
    ppo_value_loss,
    reinforce_pp_loss,
    rloo_loss,
    sft_loss,
)


def leaf(values):
    return torch.tensor(values, dtype=torch.float32, requires_grad=True)


def test_ppo_ratio_clips_on_one_side_and_not_the_other():
    # ε = 0.2; ratios 1.5, 1.5, 0.5, 0.5 against advantages +1, −1, +1, −1:
    #   ρ=1.5, A=+1: min(1.5, 1.2) = 1.2  → clipped (no gradient: the policy already gained enough)
    #   ρ=1.5, A=−1: min(−1.5, −1.2) = −1.5 → not clipped (the pessimistic bound keeps the worse, unclipped term)
    #   ρ=0.5, A=+1: min(0.5, 0.8) = 0.5  → not clipped
    #   ρ=0.5, A=−1: min(−0.5, −0.8) = −0.8 → clipped
    logp = leaf([[math.log(1.5), math.log(1.5), math.log(0.5), math.log(0.5)]])
    logp_old = torch.zeros(1, 4)
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    loss, stats = ppo_policy_loss(logp, logp_old, adv, torch.ones(1, 4), eps=0.2)
    assert loss.item() == pytest.approx((-1.2 + 1.5 - 0.5 + 0.8) / 4)
    assert stats["clip_frac"] == pytest.approx(0.5)
    assert stats["clip_frac_high"] == pytest.approx(0.25) and stats["clip_frac_low"] == pytest.approx(0.25)
    loss.backward()
    # d/dlogp of −ρA/4 is −ρA/4 where unclipped, 0 where clipped
    assert torch.allclose(logp.grad, torch.tensor([[0.0, 1.5 / 4, -0.5 / 4, 0.0]]))


def test_ppo_value_loss_clipped_and_combined():
    values = leaf([[1.5, 1.5]])
    values_old = torch.tensor([[1.0, 1.0]])
    returns = torch.tensor([[2.0, 1.0]])
    # token 0: unclipped (1.5−2)² = 0.25, clipped V = 1.2: (1.2−2)² = 0.64 → 0.64
    # token 1: unclipped 0.25, clipped (1.2−1)² = 0.04 → 0.25;  ½·mean = ½·0.445
    loss, stats = ppo_value_loss(values, values_old, returns, torch.ones(1, 2), eps=0.2)
    assert loss.item() == pytest.approx(0.2225)
    assert stats["value_clip_frac"] == pytest.approx(0.5)
    unclipped, _ = ppo_value_loss(values, values_old, returns, torch.ones(1, 2), eps=0.0)
    assert unclipped.item() == pytest.approx(0.25 / 2)
    logp = torch.zeros(1, 2)
    total, stats = ppo_loss(logp, logp, torch.tensor([[1.0, 1.0]]), values, values_old, returns, torch.ones(1, 2),
                            value_coef=0.5)
    assert total.item() == pytest.approx(-1.0 + 0.5 * 0.2225)
    assert set(stats) >= {"policy_loss", "value_loss", "loss", "clip_frac"}


def test_grpo_vs_dr_grpo_vs_dapo_on_unequal_lengths():
    # two sequences of 1 and 3 tokens, on-policy (ρ = 1), advantages +1 and −1: per-token loss −A
    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([1.0, -1.0])

    def run(fn, **kw):
        logp = leaf([[-1.0, 0.0, 0.0], [-1.0, -2.0, -0.5]])
        loss, _ = fn(logp, logp.detach(), adv, mask, **kw)
        loss.backward()
        return loss.item(), logp.grad * mask

    # GRPO: sequence means (−1, +1), batch mean 0; token grads −A/(|o_i|·B): −1/2 and +1/6
    loss, grad = run(grpo_loss)
    assert loss == pytest.approx(0.0)
    assert torch.allclose(grad, torch.tensor([[-0.5, 0, 0], [1 / 6, 1 / 6, 1 / 6]]))
    # Dr. GRPO: token sums (−1, +3) / (B · L_max = 2·4): 0.25; every token weighs 1/8 — the long wrong answer is
    # penalised per token as hard as the short right one is rewarded
    loss, grad = run(dr_grpo_loss, max_tokens=4)
    assert loss == pytest.approx(0.25)
    assert torch.allclose(grad, torch.tensor([[-1 / 8, 0, 0], [1 / 8, 1 / 8, 1 / 8]]))
    # DAPO: token-level mean over the batch (4 tokens): (−1 + 3)/4
    loss, grad = run(dapo_loss)
    assert loss == pytest.approx(0.5)
    assert torch.allclose(grad, torch.tensor([[-0.25, 0, 0], [0.25, 0.25, 0.25]]))
    # REINFORCE++ also averages over tokens
    assert run(reinforce_pp_loss)[0] == pytest.approx(0.5)


def test_dapo_clip_higher_is_asymmetric():
    # ρ = 1.25 with A = +1: GRPO's symmetric ε = 0.2 clips it (no gradient), DAPO's ε_high = 0.28 does not;
    # ρ = 0.75 with A = −1: both clip at 1 − ε_low = 0.8
    logp_old = torch.zeros(1, 2)
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    ratios = [math.log(1.25), math.log(0.75)]
    logp = leaf([ratios])
    _, g_stats = grpo_loss(logp, logp_old, adv, mask)
    g_loss, _ = grpo_loss(logp, logp_old, adv, mask)
    g_loss.backward()
    assert logp.grad.tolist() == [[0.0, 0.0]] and g_stats["clip_frac"] == 1.0
    logp = leaf([ratios])
    d_loss, d_stats = dapo_loss(logp, logp_old, adv, mask, eps_low=0.2, eps_high=0.28)
    d_loss.backward()
    assert d_loss.item() == pytest.approx((-1.25 + 0.8) / 2)
    assert logp.grad[0, 0].item() == pytest.approx(-1.25 / 2) and logp.grad[0, 1].item() == 0.0
    assert d_stats["clip_frac_high"] == 0.0 and d_stats["clip_frac_low"] == 0.5


def test_grpo_kl_term_and_missing_reference():
    logp = leaf([[-1.0, -2.0]])
    logp_ref = torch.tensor([[-1.5, -1.0]])
    mask = torch.ones(1, 2)
    base, _ = grpo_loss(logp, logp.detach(), torch.tensor([0.0]), mask)
    with_kl, stats = grpo_loss(logp, logp.detach(), torch.tensor([0.0]), mask, logp_ref=logp_ref, beta=0.1)
    k3 = kl_k3(logp.detach(), logp_ref).mean().item()
    assert with_kl.item() == pytest.approx(base.item() + 0.1 * k3)
    assert stats["kl_ref"] == pytest.approx(k3)
    with pytest.raises(ValueError):
        grpo_loss(logp, logp.detach(), torch.tensor([0.0]), mask, beta=0.1)


def test_rloo_loss_is_sequence_level_reinforce():
    logp = leaf([[-1.0, -2.0], [-0.5, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([2.0, -1.0])
    loss, _ = rloo_loss(logp, logp.detach(), adv, mask)
    loss.backward()
    assert loss.item() == pytest.approx(-(2.0 - 1.0) / 2)  # −mean(ρ·A) with ρ = 1
    assert torch.allclose(logp.grad, torch.tensor([[-1.0, -1.0], [0.5, 0.0]]))  # −A_i/B on every token


def test_kl_estimators_against_exact_categorical_kl():
    p = torch.tensor([0.5, 0.3, 0.2])  # π_θ, the sampling distribution
    q = torch.tensor([0.2, 0.5, 0.3])  # π_ref
    exact = (p * (p / q).log()).sum().item()  # KL(p ‖ q) = 0.5 ln 2.5 + 0.3 ln 0.6 + 0.2 ln(2/3) ≈ 0.2241
    assert exact == pytest.approx(0.5 * math.log(2.5) + 0.3 * math.log(0.6) + 0.2 * math.log(2 / 3))
    logp, logq = p.log(), q.log()
    # expectations under p, by enumerating the support: k1 and k3 are unbiased, k2 is not
    assert (p * kl_k1(logp, logq)).sum().item() == pytest.approx(exact, abs=1e-6)
    assert (p * kl_k3(logp, logq)).sum().item() == pytest.approx(exact, abs=1e-6)
    k2 = (p * kl_k2(logp, logq)).sum().item()
    assert k2 != pytest.approx(exact, abs=1e-3) and k2 == pytest.approx(exact, rel=0.25)
    assert (kl_k3(logp, logq) >= 0).all() and (kl_k1(logp, logq) < 0).any()  # k3 never negative, k1 can be
    # sampled estimates
    g = torch.Generator().manual_seed(0)
    x = torch.multinomial(p, 200_000, replacement=True, generator=g)
    for k in (kl_k1, kl_k3):
        assert k(logp[x], logq[x]).mean().item() == pytest.approx(exact, abs=0.01)
    assert kl_k3(logp[x], logq[x]).var() < kl_k1(logp[x], logq[x]).var()  # k3's lower variance


def test_dpo_and_ipo_hand_computed():
    # h = (−1 − (−1.5)) − (−2 − (−1.5)) = 0.5 + 0.5 = 1
    lc, lr = leaf([-1.0]), leaf([-2.0])
    rc, rr = torch.tensor([-1.5]), torch.tensor([-1.5])
    loss, stats = dpo_loss(lc, lr, rc, rr, beta=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-0.5)))  # −log σ(0.5) ≈ 0.474077
    assert stats["accuracy"] == 1.0 and stats["margin"] == pytest.approx(0.5)
    assert stats["reward_chosen"] == pytest.approx(0.25) and stats["reward_rejected"] == pytest.approx(-0.25)
    loss.backward()
    s = 1 / (1 + math.exp(0.5))  # σ(−βh)
    assert lc.grad.item() == pytest.approx(-0.5 * s) and lr.grad.item() == pytest.approx(0.5 * s)
    smooth, _ = dpo_loss(lc, lr, rc, rr, beta=0.5, label_smoothing=0.1)
    assert smooth.item() == pytest.approx(0.9 * math.log(1 + math.exp(-0.5)) + 0.1 * math.log(1 + math.exp(0.5)))
    # IPO: (h − 1/(2τ))²: τ = 0.25 → (1 − 2)² = 1; τ = 0.5 → 0 (the margin sits at its target)
    assert ipo_loss(lc, lr, rc, rr, beta=0.25)[0].item() == pytest.approx(1.0)
    assert ipo_loss(lc, lr, rc, rr, beta=0.5)[0].item() == pytest.approx(0.0)


def test_sft_loss_unchanged():
    loss, stats = sft_loss(torch.zeros(1, 2, 4), torch.tensor([[0, 1]]), torch.tensor([[1, 1]]))
    assert loss.item() == pytest.approx(math.log(4)) and stats["tokens"] == 2
