"""Configuration of the search-and-learn loop (`searchlearn loop CONFIG.yaml`): phases of rounds.

A loop starts from an initial policy (a checkpoint, or policy initialization run here) and runs `phases` in order;
a phase is `rounds` rounds with one searcher, one reward and one learner. Config names map to functions through the
registries below (`SEARCHERS`, `REWARDS`, `LEARNERS`, built in `loop_parts`): an unknown name is a config error that
lists the valid ones, and no trainer ever switches on a string.

    phases:
      - {rounds: 2, learner: expert_iteration, searcher: {name: beam, n: 8, options: {width: 4}}}
      - {rounds: 2, learner: grpo, grpo: {steps: 20, lr: 1.0e-4}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from searchlearn.config import ConfigError, from_dict, load, to_dict
from searchlearn.evaluate import EvalConfig
from searchlearn.initialize import InitConfig
from searchlearn.learn.dpo import DPOConfig
from searchlearn.learn.grpo import GRPOConfig
from searchlearn.learn.ppo import PPOConfig
from searchlearn.learn.sft import SFTConfig
from searchlearn.loop_parts import LEARNERS, REWARDS, SEARCHERS
from searchlearn.tasks.countdown import CountdownConfig

FIXED_OPTIONS = ("temperature", "max_new_tokens", "seed")  # set from SearcherConfig's own fields and the round


def _names(registry: dict) -> str:
    return ", ".join(sorted(registry))


@dataclass
class SearcherConfig:
    name: str = "bon"  # training-time searcher: bon | beam | dvts | mcts | revision (see loop_parts.SEARCHERS)
    n: int = 8  # budget per problem in best-of-N units (search/budget.py): BoN samples, beam candidates per depth, ...
    max_tokens: int | None = None  # hard cap on generated tokens per problem (None = n × max_new_tokens)
    temperature: float = 1.0  # sampling temperature of the search
    max_new_tokens: int = 192  # completion cap of a trajectory
    options: dict = field(default_factory=dict)  # the searcher's own settings: keys of BeamConfig / MCTSConfig / ...

    def __post_init__(self) -> None:
        if self.name not in SEARCHERS:
            raise ConfigError(f"unknown searcher {self.name!r}; valid searchers: {_names(SEARCHERS)}")
        if self.n < 1 or self.max_new_tokens < 1 or self.temperature < 0:
            raise ConfigError("searcher: n, max_new_tokens >= 1 and temperature >= 0")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError("searcher.max_tokens must be >= 1 (or null)")
        fixed = sorted(set(self.options) & set(FIXED_OPTIONS))
        if fixed:
            raise ConfigError(f"searcher.options {fixed}: set temperature / max_new_tokens on the searcher itself; "
                              "the seed comes from the round")
        self.search_config(seed=0)  # build once now, so that a bad option fails at load time

    def search_config(self, seed: int):
        """The searcher's own config object (None for best-of-N), with this round's seed."""
        config_cls = SEARCHERS[self.name].config
        if config_cls is None:
            if self.options:
                raise ConfigError(f"searcher {self.name!r} takes no options, got {sorted(self.options)}")
            return None
        data = {**self.options, "temperature": self.temperature, "max_new_tokens": self.max_new_tokens, "seed": seed}
        return from_dict(config_cls, data, f"searcher.options ({self.name}).")


@dataclass
class PhaseConfig:
    rounds: int = 1  # rounds of this phase, each: search → reward → learn → evaluate → checkpoint
    learner: str = "expert_iteration"  # expert_iteration (= sft), dpo, ipo, step_dpo, grpo, dr_grpo, dapo, rloo, ppo...
    searcher: SearcherConfig = field(default_factory=SearcherConfig)  # training-time search (online learners: unused)
    reward: str = "verifier"  # verifier | gold | confidence | selfeval: the scorers of the round (see REWARDS)
    problems: int = 256  # fresh training problems per round (searched; for online learners, the rollout pool)
    keep_per_problem: int = 2  # expert iteration: distinct verifier-correct trajectories kept per problem
    max_pairs_per_problem: int = 4  # DPO: correct × incorrect solution pairs per problem
    min_margin: float = 0.0  # step-DPO: least value gap between the chosen and the rejected sibling step
    max_pairs_per_node: int = 2  # step-DPO: sibling pairs per tree node
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(steps=200, lr=1e-3, warmup_steps=20,
                                                              checkpoint_every=50))  # expert iteration's SFT
    dpo: DPOConfig = field(default_factory=lambda: DPOConfig(steps=100, lr=1e-4, checkpoint_every=25))  # (step-)DPO
    grpo: GRPOConfig = field(default_factory=lambda: GRPOConfig(steps=20, lr=1e-4, checkpoint_every=5))  # GRPO family
    ppo: PPOConfig = field(default_factory=lambda: PPOConfig(steps=20, prompts_per_step=32, samples_per_prompt=4,
                                                            lr=1e-4, checkpoint_every=5))  # PPO

    def __post_init__(self) -> None:
        if self.learner not in LEARNERS:
            raise ConfigError(f"unknown learner {self.learner!r}; valid learners: {_names(LEARNERS)}")
        if self.reward not in REWARDS:
            raise ConfigError(f"unknown reward {self.reward!r}; valid rewards: {_names(REWARDS)}")
        if self.rounds < 0 or self.problems < 1 or self.keep_per_problem < 1 or self.max_pairs_per_problem < 1:
            raise ConfigError("rounds >= 0; problems, keep_per_problem, max_pairs_per_problem >= 1")
        if self.max_pairs_per_node < 1 or self.min_margin < 0:
            raise ConfigError("max_pairs_per_node >= 1 and min_margin >= 0")
        spec = LEARNERS[self.learner]
        if spec.needs_tree and not SEARCHERS[self.searcher.name].tree:
            trees = sorted(n for n, s in SEARCHERS.items() if s.tree)
            raise ConfigError(f"learner {self.learner!r} needs a search tree; use a tree searcher "
                              f"({', '.join(trees)}), not {self.searcher.name!r}")


@dataclass
class LoopConfig:
    seed: int = 0  # seeds the held-out split (as the demo), each round's problems, searches and learners
    init_from: str | None = "runs/demo/policy"  # starting checkpoint (searchlearn or HF dir); null = initialize here
    init: InitConfig = field(default_factory=InitConfig)  # policy initialization settings, used when init_from is null
    task: CountdownConfig = field(default_factory=lambda: CountdownConfig(style="search"))  # the Countdown task
    phases: tuple[PhaseConfig, ...] = field(default_factory=lambda: (PhaseConfig(rounds=2),))  # run in order
    eval: EvalConfig = field(default_factory=EvalConfig)  # held-out evaluation after every round
    prompt: str = "task"  # system prompt for chat (HF) checkpoints: none | task | reasoning; ignored otherwise

    def __post_init__(self) -> None:
        phases = []
        for i, phase in enumerate(self.phases):
            phases.append(from_dict(PhaseConfig, phase, f"phases[{i}].") if isinstance(phase, dict) else phase)
            if not isinstance(phases[-1], PhaseConfig):
                raise ConfigError(f"phases[{i}]: expected a mapping of phase settings")
        self.phases = tuple(phases)
        if not self.phases or sum(p.rounds for p in self.phases) < 1:
            raise ConfigError("the loop needs at least one phase with rounds >= 1")
        if self.prompt not in ("none", "task", "reasoning"):
            raise ConfigError(f"prompt must be none, task or reasoning, got {self.prompt!r}")

    @property
    def rounds(self) -> int:
        return sum(p.rounds for p in self.phases)

    def schedule(self) -> list[tuple[int, PhaseConfig]]:
        """(round number r = 1..R, its phase) for every round."""
        return [(r, phase) for r, phase in enumerate((p for p in self.phases for _ in range(p.rounds)), start=1)]


def load_loop_config(path: str | Path | None, overrides: list[str] = (), cls: type = LoopConfig, base=None):
    """Defaults (or `base`), then the YAML file, then `key.path=value` overrides (a list index is a number:
    phases.1.rounds=3; new keys are allowed only under a searcher's free-form `options`). Unknown keys raise
    ConfigError. `cls` is LoopConfig or a subclass of it (the demo's DemoConfig)."""
    config = load(cls, path, base=base)
    if not overrides:
        return config
    data = json.loads(json.dumps(to_dict(config)))  # plain dicts and lists
    for assignment in overrides:
        _assign(data, assignment)
    return from_dict(cls, data)


def _assign(data: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} is not of the form key.path=value")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    node, parent_key = data, ""
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"override {path!r}: {key!r} is not an index of {parent_key} (0..{len(node) - 1})")
            key = int(key)
        elif not isinstance(node, dict):
            raise ConfigError(f"override {path!r}: {parent_key!r} is not a config section")
        elif key not in node and parent_key != "options":
            raise ConfigError(f"override {path!r}: unknown key {key!r}; valid keys: {', '.join(sorted(node))}")
        if last:
            node[key] = yaml.safe_load(raw)
        else:
            node, parent_key = node[key], str(key)
