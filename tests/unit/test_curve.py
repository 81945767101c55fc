"""Learning-curve bookkeeping (loop/curve.py) on hand-built records: totals, resume, and the trainer's counters."""

import pytest
import torch

from searchlearn.learn.trainer import TrainConfig, Trainer
from searchlearn.loop.curve import curve_points, mean_curve, point, totals


def rec(phase, step, samples=0, generated=0, trained=0, seconds=0.0, **kw):
    return {"phase": phase, "step": step, "count/samples": samples, "count/generated_tokens": generated,
            "count/train_tokens": trained, "count/seconds": seconds, **kw}


def test_totals_sum_the_counters_of_every_phase():
    records = [{"phase": "round1_search", "count/samples": 128, "count/generated_tokens": 9000, "count/seconds": 4.0},
               rec("round1", 1, trained=500, seconds=1.0), rec("round1", 2, trained=700, seconds=1.5),
               {"phase": "eval", "round": 1, "search/pass@1": 0.5},  # evaluations spend no training compute
               rec("round2", 1, samples=32, generated=3200, trained=3000, seconds=2.0)]
    assert totals(records) == {"samples": 160, "generated_tokens": 12200, "train_tokens": 4200, "seconds": 8.5}


def test_a_resumed_phase_counts_each_step_once_and_not_the_steps_it_has_not_redone():
    killed = [rec("round1", s, samples=10, generated=100, trained=50, seconds=1.0) for s in (1, 2, 3)]
    resumed = [rec("round1", 3, samples=10, generated=100, trained=50, seconds=1.2)]  # resumed from the step-2 ckpt
    records = killed + resumed
    assert totals(records, "round1", 2) == {"samples": 20, "generated_tokens": 200, "train_tokens": 100,
                                            "seconds": 2.0}
    assert totals(records, "round1", 3)["samples"] == 30 and totals(records, "round1", 3)["seconds"] == 3.2


def test_curve_points_keep_one_point_per_round_and_step_in_order():
    records = [rec("round1", 1, samples=8, generated=80, trained=40, seconds=0.5)]
    p1 = point(records, 1, 1, "grpo", {"pass@1": 0.25}, "round1")
    assert p1 == {"phase": "curve", "round": 1, "step": 1, "learner": "grpo", "samples": 8, "generated_tokens": 80,
                  "train_tokens": 40, "wall_s": 0.5, "pass@1": 0.25}
    init = point([], 0, 0, "init", {"pass@1": 0.125, "train_pass@1": 0.5})
    again = dict(p1, **{"pass@1": 0.25, "time": 5.0})  # the same point logged again after a resume
    points = curve_points([p1, init, {"phase": "round1", "step": 1}, again])
    assert [(p["round"], p["step"]) for p in points] == [(0, 0), (1, 1)]
    assert points[0]["samples"] == 0 and points[0]["train_pass@1"] == 0.5
    assert "phase" not in points[1] and "time" not in points[1]


def test_the_trainer_sums_counters_over_a_logging_window_and_averages_the_rest():
    model = torch.nn.Linear(2, 1)
    records = []
    trainer = Trainer(model, TrainConfig(steps=4, log_every=2, lr=1e-3), "t", log=records.append)

    def step_fn(step):
        loss = model(torch.ones(1, 2)).sum()
        trainer.update(loss)
        return {"learn/loss": float(step), "count/samples": 3 + step}

    trainer.run(step_fn)
    assert [r["step"] for r in records] == [2, 4]
    assert [r["count/samples"] for r in records] == [3 + 4, 5 + 6]
    assert [r["learn/loss"] for r in records] == pytest.approx([0.5, 2.5])
    assert all(r["count/seconds"] >= 0 for r in records)


def test_curve_points_fall_every_k_steps_or_at_k_times_powers_of_two():
    from searchlearn.config import ConfigError
    from searchlearn.loop.curve import CurveConfig

    assert [s for s in range(1, 70) if CurveConfig(every=8).due(s)] == [8, 16, 24, 32, 40, 48, 56, 64]
    assert [s for s in range(1, 70) if CurveConfig(every=8, spacing="log").due(s)] == [8, 16, 32, 64]
    assert not any(CurveConfig(every=0, spacing="log").due(s) for s in range(1, 70))
    with pytest.raises(ConfigError, match="spacing"):
        CurveConfig(spacing="exp")


def test_mean_curve_averages_accuracy_and_compute_point_by_point_over_the_points_all_seeds_reached():
    pt = lambda acc, samples, tokens: {"round": 1, "step": samples // 8, "learner": "grpo", "samples": samples,  # noqa
                                       "generated_tokens": tokens, "pass@1": acc}
    seeds = [[pt(0.40, 0, 0), pt(0.50, 8, 1000), pt(0.55, 16, 2100)],
             [pt(0.30, 0, 0), pt(0.60, 8, 1400)],
             [pt(0.35, 0, 0), pt(0.40, 8, 1200), pt(0.90, 16, 2000)]]
    mean = mean_curve(seeds)
    assert len(mean) == 2  # the second seed stopped after its second point
    assert mean[1]["pass@1"] == pytest.approx(0.5) and mean[1]["generated_tokens"] == pytest.approx(1200)
    assert mean[1]["pass@1_sd"] == pytest.approx(0.1)  # sd of 0.5, 0.6, 0.4 (n - 1)
    assert mean[0]["pass@1_sd"] == pytest.approx(0.05) and mean[0]["learner"] == "grpo"
    assert mean_curve(seeds[:1])[2] == {**seeds[0][2], "pass@1_sd": 0.0}
    with pytest.raises(ValueError):
        mean_curve([])
