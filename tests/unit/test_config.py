from dataclasses import dataclass, field

import pytest

from searchlearn.config import ConfigError, from_dict, load, override


@dataclass
class Inner:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError("lr must be > 0")


@dataclass
class Outer:
    seed: int = 0
    inner: Inner = field(default_factory=Inner)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['lrr'\].*valid keys: betas, lr"):
        from_dict(Outer, {"inner": {"lrr": 1}})


def test_nested_build_and_tuple_conversion():
    cfg = from_dict(Outer, {"seed": 3, "inner": {"lr": 0.5, "betas": [0.1, 0.2]}})
    assert cfg.seed == 3 and cfg.inner.lr == 0.5 and cfg.inner.betas == (0.1, 0.2)


def test_dotted_override_parses_yaml_scalars_and_rechecks():
    cfg = override(Outer(), ["inner.lr=3e-4", "seed=7"])
    assert cfg.inner.lr == pytest.approx(3e-4) and cfg.seed == 7
    with pytest.raises(ConfigError, match="lr must be > 0"):
        override(Outer(), ["inner.lr=-1"])
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        override(Outer(), ["inner.nope=1"])
    with pytest.raises(ConfigError, match="not of the form"):
        override(Outer(), ["seed"])


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 5\ninner:\n  lr: 0.25\n")
    cfg = load(Outer, path, ["inner.lr=0.5"])
    assert cfg.seed == 5 and cfg.inner.lr == 0.5 and cfg.inner.betas == (0.9, 0.99)


def test_demo_reward_guide_must_be_a_trained_head():
    from searchlearn.recipes.demo import RewardStageConfig

    assert RewardStageConfig().guide in RewardStageConfig().models
    with pytest.raises(ConfigError, match="reward.guide 'ppm_soft' is not one of"):
        RewardStageConfig(guide="ppm_soft")
    with pytest.raises(ConfigError, match="outcome_problems"):
        RewardStageConfig(outcome_problems=-1)
