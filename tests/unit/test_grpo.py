import copy
from functools import partial

import pytest
import torch
from conftest import tiny_model

from searchlearn.learn.advantages import grpo_advantages, solved_length_cost
from searchlearn.learn.grpo import GRPOConfig, collect, recipe, train_grpo, update
from searchlearn.learn.losses import grpo_loss
from searchlearn.learn.ppo import PPOConfig, action_values, prepare, train_ppo
from searchlearn.learn.ppo import update as ppo_update
from searchlearn.learn.rollout import (
    frozen_logprobs,
    make_batch,
    sorted_token_logprobs,
    step_rewards,
    token_logprobs,
)
from searchlearn.learn.trainer import Trainer
from searchlearn.policy.heads import ValueModel
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.types import Completion, Problem

TOK = TaskTokenizer(words=(), max_number=20)
PROBLEMS = [Problem(f"p{i}", f"{i} {i + 1} -> {2 * i + 1}\n") for i in range(8)]


def tiny_policy(seed=0):
    return LocalPolicy(tiny_model(seed, TOK.vocab_size), TOK)


def sevens(problems, completions):
    """A graded toy reward: how many '7's the completion writes (so groups rarely tie)."""
    return [c.text.count("7") / 4 for c in completions]


def small_cfg(**kw):
    base = dict(steps=3, prompts_per_step=4, group_size=4, max_new_tokens=8, lr=1e-2, seed=0)
    return GRPOConfig(**{**base, **kw})


def test_make_batch_masks_completion_columns():
    batch = make_batch([[1, 7], [1, 7, 9]], [[8, 2], [2]], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 7, 8, 2], [1, 7, 9, 2]]
    assert batch.action_mask.tolist() == [[0, 1, 1], [0, 0, 1]]  # column t scores token t+1
    sub = make_batch([[1, 7], [1]], [[8], [5]], pad_id=0).rows([1])
    assert sub.input_ids.tolist() == [[1, 5]]  # trimmed to the row's own length


def test_length_sorted_chunks_give_the_padded_forwards_values_and_gradients():
    policy = tiny_policy()
    lengths = [3, 17, 5, 11, 2, 9, 14]  # ragged completions, rows out of length order
    batch = make_batch([[1, 5, 6]] * len(lengths), [[7 + (i + j) % 5 for j in range(n)] for i, n in enumerate(lengths)],
                       TOK.pad_id)
    weights = torch.randn(batch.action_mask.shape) * batch.action_mask
    grads = []
    for fn in (token_logprobs, lambda m, b: sorted_token_logprobs(m, b, 3)):
        policy.model.zero_grad()
        logp = fn(policy.model, batch)  # (B, T-1)
        (logp * weights).sum().backward()
        grads.append([q.grad.clone() for q in policy.model.parameters()])
        if fn is token_logprobs:
            reference = logp.detach()
    torch.testing.assert_close(logp.detach() * batch.action_mask, reference * batch.action_mask, atol=1e-5, rtol=0)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_collect_includes_eos_as_an_action_and_charges_the_ledger():
    policy = tiny_policy()
    rollout, stats = collect(policy, PROBLEMS, 0, small_cfg(), sevens)
    assert rollout.rewards.shape == (4, 4) and len(rollout.batch) == 16
    for c, actions in zip(rollout.completions, rollout.action_ids):
        assert actions == c.token_ids + ([TOK.eos_id] if c.finish_reason == "eos" else [])
    assert rollout.batch.action_mask.sum(-1).tolist() == [len(a) for a in rollout.action_ids]
    assert stats["ledger/generated_tokens"] > 0 and stats["learn/groups"] == 4
    varied = [len(set(row)) > 1 for row in rollout.rewards.tolist()]  # groups whose samples scored differently
    assert stats["learn/informative_groups"] == sum(varied) / 4


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp"])
def test_one_update_changes_parameters_and_lowers_the_loss_on_a_fixed_batch(name):
    policy = tiny_policy()
    model = policy.model
    cfg = small_cfg()
    r = recipe(name, cfg)
    rollout, _ = collect(policy, PROBLEMS, 0, cfg, sevens)
    assert rollout.rewards.std() > 0
    advantages = r.advantage_fn(rollout.rewards).flatten()
    batch = rollout.batch
    logp_old = frozen_logprobs(model, batch)

    def fixed_loss():
        with torch.no_grad():
            return r.loss_fn(token_logprobs(model, batch), logp_old, advantages, batch.action_mask)[0].item()

    before_loss, before = fixed_loss(), copy.deepcopy(model.state_dict())
    stats = update(Trainer(model, cfg, "grpo"), rollout, advantages, cfg, r.loss_fn, step=0)
    assert stats["updates"] == 1 and stats["ratio"] == pytest.approx(1.0)  # on-policy: π_old is π_θ itself
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert fixed_loss() < before_loss


def test_minibatch_epochs_recompute_the_old_policy():
    policy = tiny_policy()
    cfg = small_cfg(epochs=2, minibatch_size=8)
    rollout, _ = collect(policy, PROBLEMS, 0, cfg, sevens)
    stats = update(Trainer(policy.model, cfg, "grpo"), rollout, grpo_advantages(rollout.rewards).flatten(), cfg, grpo_loss, step=0)
    assert stats["updates"] == 4  # 2 epochs × 16/8 minibatches
    assert stats["ratio"] != pytest.approx(1.0, abs=1e-7)  # later minibatches are off-policy


def test_the_clip_fires_once_the_policy_moves_and_never_on_policy():
    """One minibatch, one epoch: ρ ≡ 1 and nothing is clipped. Several minibatches and epochs at a learning rate that
    moves the weights: later minibatches see ρ outside [1-ε, 1+ε] and the clip cuts their gradient."""
    for cfg, clipped in ((small_cfg(lr=0.05), False), (small_cfg(lr=0.05, epochs=4, minibatch_size=4), True)):
        policy = tiny_policy()
        rollout, _ = collect(policy, PROBLEMS, 0, cfg, sevens)
        fractions = []

        def loss_fn(*args, **kw):
            loss, stats = grpo_loss(*args, **kw)
            fractions.append(stats["clip_frac"])
            return loss, stats

        update(Trainer(policy.model, cfg, "grpo"), rollout, grpo_advantages(rollout.rewards).flatten(), cfg, loss_fn,
               step=0)
        if clipped:
            assert fractions[0] == 0.0 and max(fractions[-4:]) > 0.05, fractions  # the first minibatch is on-policy
        else:
            assert fractions == [0.0]


def test_dynamic_sampling_drops_constant_groups_and_overlong_penalty_shapes_rewards():
    def reward(problems, completions):  # p0..p3 always score 1 (an uninformative group), the rest graded
        return [1.0 if int(p.id[1:]) < 4 else c.text.count("7") / 4 for p, c in zip(problems, completions)]

    policy = tiny_policy()
    cfg = small_cfg(dynamic_sampling=True, max_sampling_rounds=3)
    rollout, stats = collect(policy, PROBLEMS, 0, cfg, reward)
    assert all(int(p.id[1:]) >= 4 for p in rollout.problems)
    assert (rollout.rewards.std(-1) > 0).all() and len(rollout.problems) <= cfg.prompts_per_step
    assert stats["learn/groups_drawn"] > stats["learn/groups"]

    cfg = small_cfg(overlong_buffer=4)
    rollout, _ = collect(policy, PROBLEMS, 0, cfg, sevens)
    lengths = rollout.lengths()
    expected = rollout.scores + torch.where(lengths > 4, (4 - lengths) / 4, torch.zeros_like(lengths))
    assert torch.allclose(rollout.rewards, expected)


def test_train_grpo_with_reference_resumes_exactly(tmp_path):
    cfg = small_cfg(beta=0.05, checkpoint_every=1, epochs=2, minibatch_size=8)
    straight = tiny_policy()
    records = []
    train_grpo(straight, PROBLEMS, cfg, sevens, log=records.append)
    assert len(records) == 3 and "learn/kl_ref" in records[-1] and records[-1]["learn/kl_ref"] > 0

    interrupted = tiny_policy()
    train_grpo(interrupted, PROBLEMS, cfg, sevens, ckpt_dir=tmp_path / "ck", stop_after=2)
    assert (tmp_path / "ck" / "reference" / "model.safetensors").is_file()
    resumed = tiny_policy(seed=5)  # different weights: everything must come from the checkpoint
    stats = train_grpo(resumed, PROBLEMS, cfg, sevens, ckpt_dir=tmp_path / "ck")
    assert stats["steps"] == 3
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_beta_zero_without_kl_logging_loads_no_reference(monkeypatch):
    import searchlearn.learn.trainer as trainer

    monkeypatch.setattr(trainer.copy, "deepcopy", lambda *a: pytest.fail("a reference was built with beta = 0"))
    train_grpo(tiny_policy(), PROBLEMS, small_cfg(steps=1, log_kl_init=False), sevens,
               loss_fn=partial(grpo_loss, eps_low=0.1))


def test_value_model_shapes_and_sharing():
    policy = tiny_policy()
    critic = ValueModel(policy.model)
    batch = make_batch([[1, 7], [1, 7, 9]], [[8, 2], [2]], pad_id=0)
    assert action_values(critic, batch).shape == (2, 3)
    assert torch.all(action_values(critic, batch) == 0)  # zero-initialised head
    assert critic.net.model is not policy.model.model
    shared = ValueModel(policy.model, share_backbone=True)
    assert shared.net.model is policy.model.model and len(shared.own_parameters()) == 2


def test_ppo_update_lowers_loss_and_train_ppo_runs(tmp_path):
    policy = tiny_policy()
    cfg = PPOConfig(steps=2, prompts_per_step=8, group_size=2, max_new_tokens=8, lr=1e-2, critic_lr=1e-3,
                    epochs=1, beta=0.05, checkpoint_every=1)
    rollout, _ = collect(policy, PROBLEMS, 0, small_cfg(prompts_per_step=8, group_size=2), sevens)
    critic = ValueModel(policy.model)
    reference = copy.deepcopy(policy.model)
    prep = prepare(policy.model, critic, rollout, cfg, reference)
    assert prep["advantages"].shape == rollout.batch.action_mask.shape
    assert torch.all(prep["advantages"][rollout.batch.action_mask == 0] == 0)
    trainer = Trainer(policy.model, cfg, "ppo", aux={"value_model": critic}, aux_lr={"value_model": cfg.critic_lr})
    first = ppo_update(trainer, critic, rollout, prep, cfg, step=0)
    second = ppo_update(trainer, critic, rollout, prep, cfg, step=1)
    assert second["loss"] < first["loss"]
    assert second["value_loss"] < first["value_loss"]

    records = []
    before = copy.deepcopy(policy.model.state_dict())
    train_ppo(policy, PROBLEMS, cfg, sevens, log=records.append, ckpt_dir=tmp_path / "ppo")
    assert len(records) == 2 and records[-1]["learn/updates"] == 1
    assert any(not torch.equal(before[k], v) for k, v in policy.model.state_dict().items())
    assert (tmp_path / "ppo" / "value_model.safetensors").is_file()


def test_step_rewards_land_on_the_token_that_ends_each_step():
    text = "3+4=7\n7*2=14\n"
    ids = TOK.encode(text)  # 3 + 4 = 7 \n 7 * 2 = 14 \n
    completion = Completion(0, ids, text, [0.0] * len(ids), "eos")
    from searchlearn.learn.rollout import Rollout

    rollout = Rollout([PROBLEMS[0]], [completion], [[1, 5]], [ids + [TOK.eos_id]], torch.zeros(1, 1),
                      torch.zeros(1, 1), pad_id=TOK.pad_id)
    dense = step_rewards(rollout, [[0.5, -1.0]], [["3+4=7\n", "7*2=14\n"]], TOK.decode)
    assert dense.shape == (1, 2 + len(ids))  # prompt 2 + completion + EOS, minus the shift
    assert dense[0, 1 + 5].item() == 0.5 and dense[0, 1 + len(ids) - 1].item() == -1.0  # on the two "\n" tokens
    assert dense.abs().sum().item() == 1.5


def test_kl_early_stop_ends_the_updates_when_the_hand_computed_kl_passes_the_target():
    """One full-batch update moves π_θ away from the rollout's π_old by KL k3 = κ (computed here by hand). With the
    target just below κ the next minibatch's check stops the updates after the first; just above, a second runs."""
    policy = tiny_policy()
    rollout, _ = collect(policy, PROBLEMS, 0, small_cfg(), sevens)
    advantages = grpo_advantages(rollout.rewards).flatten()
    start = copy.deepcopy(policy.model.state_dict())
    batch, mask = rollout.batch, rollout.batch.action_mask
    logp_old = frozen_logprobs(policy.model, batch)
    one = update(Trainer(policy.model, small_cfg(), "grpo"), rollout, advantages, small_cfg(), grpo_loss, step=0)
    assert one["updates"] == 1
    log_r = frozen_logprobs(policy.model, batch) - logp_old  # log π_θ − log π_old after the update
    kappa = float(((torch.expm1(-log_r) + log_r) * mask).sum() / mask.sum())  # k3 of KL(π_old ‖ π_θ), token mean
    assert kappa > 0
    for target, updates in ((0.99 * kappa, 1), (1.01 * kappa, 2)):
        policy.model.load_state_dict(start)
        cfg = small_cfg(epochs=2, target_kl=target)
        stats = update(Trainer(policy.model, cfg, "grpo"), rollout, advantages, cfg, grpo_loss, step=0)
        assert stats["updates"] == updates and stats["kl_stop"] == float(updates == 1)


def test_accepted_with_error_counts_solved_samples_with_a_wrong_line():
    from searchlearn.learn.grpo import accepted_with_error
    from searchlearn.learn.rollout import Rollout
    from searchlearn.tasks.countdown import CountdownTask

    task = CountdownTask()
    problem = Problem("c", "3 7 25 -> 46\n", data={"nums": [3, 7, 25], "target": 46})
    clean = "7*3=21 | 25 21\n25+21=46 vs 46 yes\nanswer 25+(7*3)\n"
    slip = "7*3=22 | 25 21\n25+21=46 vs 46 yes\nanswer 25+(7*3)\n"  # a wrong product, then the right answer
    wrong = "7+3=10 | 25 10\n25+10=35 vs 46 no\nanswer 25+7+3\n"
    texts = [clean, slip, wrong, slip]
    completions = [Completion(0, [], t, [], "eos") for t in texts]
    scores = torch.tensor([[task.verify(problem, t).score for t in texts]])
    assert scores.tolist() == [[1.0, 1.0, 0.0, 1.0]]
    rollout = Rollout([problem], completions, [[]] * 4, [[]] * 4, scores, scores.clone())
    assert accepted_with_error(rollout, task) == pytest.approx(2 / 3)
    assert accepted_with_error(rollout, task, limit=1) == 0.0


def test_the_length_cost_charges_solved_samples_only():
    scores = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    lengths = torch.tensor([[100.0, 300.0, 50.0], [400.0, 200.0, 10.0]])
    cost = solved_length_cost(scores, lengths, max_new_tokens=400, cost=0.5)
    assert torch.allclose(cost, torch.tensor([[0.125, 0.375, 0.0], [0.0, 0.25, 0.0]]))
    with pytest.raises(ValueError, match="length_cost"):
        GRPOConfig(length_cost=-0.1)
