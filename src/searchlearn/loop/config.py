"""Configuration of the search-and-learn loop (`searchlearn loop CONFIG.yaml`): phases of rounds.

A loop starts from an initial policy (a checkpoint, or policy initialization run here) and runs `phases` in order;
a phase is `rounds` rounds with one searcher, one reward (a process scorer) and one learner. Names map to functions
through the registries (`search.registry.SEARCHERS`, `reward.scorers.SCORERS`, `loop.learners.LEARNERS`): an unknown
name is a config error that lists the valid ones, and no trainer ever switches on a string.

    phases:
      - {rounds: 2, learner: expert_iteration, searcher: {name: beam, n: 8, options: {width: 4}}}
      - {rounds: 2, learner: grpo, grpo: {steps: 20, lr: 1.0e-4}}
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchlearn.config import ConfigError, from_dict, load, parse_value, read_yaml, to_dict
from searchlearn.learn.dpo import DPOConfig
from searchlearn.learn.grpo import GRPOConfig
from searchlearn.learn.ppo import PPOConfig
from searchlearn.learn.sft import SFTConfig
from searchlearn.loop.curve import CurveConfig
from searchlearn.loop.initialize import INIT_MEMBERS, InitConfig
from searchlearn.loop.learners import LEARNERS
from searchlearn.policy.vllm_policy import VLLMOptions
from searchlearn.report.sinks import SINKS
from searchlearn.reward.scorers import SCORERS
from searchlearn.reward.verifiers import OUTCOMES
from searchlearn.search.evaluate import EvalConfig
from searchlearn.search.registry import SEARCHERS
from searchlearn.tasks.registry import task_settings, task_spec

FIXED_OPTIONS = ("temperature", "max_new_tokens", "seed")  # set from SearcherConfig's own fields and the round


@dataclass
class SearcherConfig:
    name: str = "bon"  # training-time searcher: bon | beam | dvts | mcts | revision (search/registry.py)
    n: int = 8  # budget per problem in best-of-N units (search/budget.py): BoN samples, beam candidates per depth, ...
    max_tokens: int | None = None  # hard cap on generated tokens per problem (None = n × max_new_tokens)
    temperature: float = 1.0  # sampling temperature of the search
    max_new_tokens: int = 288  # completion cap of a trajectory
    options: dict = field(default_factory=dict)  # the searcher's own settings: keys of BeamConfig / MCTSConfig / ...

    def __post_init__(self) -> None:
        SEARCHERS[self.name]  # an unknown name lists the valid ones
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
        """The searcher's own config object, with its training-time defaults, the options and this round's seed."""
        spec = SEARCHERS[self.name]
        data = {**spec.training, **self.options, "temperature": self.temperature,
                "max_new_tokens": self.max_new_tokens, "seed": seed}
        return from_dict(spec.config, data, f"searcher.options ({self.name}).")


@dataclass
class PhaseConfig:
    rounds: int = 1  # rounds of this phase, each: search → reward → learn → evaluate → checkpoint
    learner: str = "expert_iteration"  # expert_iteration (= sft), dpo, ipo, step_dpo, grpo, ..., ppo (loop/learners.py)
    searcher: SearcherConfig = field(default_factory=SearcherConfig)  # training-time search (online learners: unused)
    reward: str = "verifier"  # the round's process scorer: verifier | gold | confidence | selfeval | learned:DIR
    outcome: str = "verifier"  # the outcome reward: verifier | checked (also 0 when a computed line is wrong)
    problems: int = 256  # fresh training problems per round (searched; for online learners, the rollout pool)
    keep_per_problem: int = 2  # expert iteration: the shortest distinct verifier-correct trajectories kept per problem
    solver_traces: float = 0.0  # expert iteration: fresh solver traces mixed in, per kept trajectory (tasks with traces)
    max_pairs_per_problem: int = 4  # DPO: correct × incorrect solution pairs per problem
    min_margin: float = 0.0  # step-DPO: least value gap between the chosen and the rejected sibling step
    max_pairs_per_node: int = 2  # step-DPO: sibling pairs per tree node
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(steps=200, lr=1e-3, warmup_steps=20,
                                                              checkpoint_every=50))  # expert iteration's SFT
    dpo: DPOConfig = field(default_factory=lambda: DPOConfig(steps=100, lr=1e-4, checkpoint_every=25))  # (step-)DPO
    # the online learners' completion cap matches the searcher's and the evaluation's (288: a Countdown trace is up to
    # ~290 tokens; a shorter cap scores every longer trace 0 and teaches the policy to be short, not right)
    grpo: GRPOConfig = field(default_factory=lambda: GRPOConfig(steps=20, lr=1e-4, checkpoint_every=5,
                                                                max_new_tokens=288))  # GRPO family
    ppo: PPOConfig = field(default_factory=lambda: PPOConfig(steps=20, prompts_per_step=32, group_size=4,
                                                            lr=1e-4, checkpoint_every=5, max_new_tokens=288))  # PPO

    def __post_init__(self) -> None:
        LEARNERS[self.learner]  # unknown names list the valid ones
        SCORERS[self.reward.partition(":")[0]]
        if self.outcome not in OUTCOMES:
            raise ConfigError(f"outcome {self.outcome!r}: choose from {', '.join(OUTCOMES)}")
        if self.rounds < 0 or self.problems < 1 or self.keep_per_problem < 1 or self.max_pairs_per_problem < 1:
            raise ConfigError("rounds >= 0; problems, keep_per_problem, max_pairs_per_problem >= 1")
        if self.max_pairs_per_node < 1 or self.min_margin < 0 or self.solver_traces < 0:
            raise ConfigError("max_pairs_per_node >= 1; min_margin, solver_traces >= 0")
        spec = LEARNERS[self.learner]
        if spec.needs_tree and not SEARCHERS[self.searcher.name].tree:
            trees = sorted(n for n, searcher in SEARCHERS.items() if searcher.tree)
            raise ConfigError(f"learner {self.learner!r} needs a search tree; use a tree searcher "
                              f"({', '.join(trees)}), not {self.searcher.name!r}")


@dataclass
class PolicyConfig:
    """What samples: the project's engine (native) or vLLM, which the learner's weights are pushed into after every
    update (policy/vllm_policy.py); the learner is the project's model either way."""

    backend: str = "native"  # native | vllm
    vllm: VLLMOptions = field(default_factory=VLLMOptions)  # the vLLM engine's settings

    def __post_init__(self) -> None:
        if self.backend not in ("native", "vllm"):
            raise ConfigError(f"policy.backend must be native or vllm, got {self.backend!r}")


@dataclass
class LoopConfig:
    seed: int = 0  # seeds the held-out split (as the demo), each round's problems, searches and learners
    init_from: str | None = "runs/demo/policy"  # starting checkpoint (searchlearn or HF dir); null = initialize here
    init: InitConfig = field(default_factory=InitConfig)  # policy initialization settings, used when init_from is null
    task_name: str = "countdown"  # the task (tasks/registry.py): countdown | code | path/to/file.py:Class (your own)
    task: Any = None  # task_name's settings (its config dataclass; None: its defaults), e.g. task.checks=tool
    phases: tuple[PhaseConfig, ...] = field(default_factory=lambda: (PhaseConfig(rounds=2),))  # run in order
    eval: EvalConfig = field(default_factory=EvalConfig)  # held-out evaluation after every round
    curve: CurveConfig = field(default_factory=CurveConfig)  # learning-curve points: greedy pass@1 while learning
    prompt: str = "task"  # system prompt for chat (HF) checkpoints: none | task | reasoning; ignored otherwise
    report_to: tuple[str, ...] = ()  # metric sinks beside metrics.jsonl: tensorboard, wandb (report/sinks.py)
    workers: int = 1  # policy replicas on Ray for search, evaluation and rollouts (1 = in-process, no Ray)
    ray_address: str | None = None  # join this Ray cluster (host:port) instead of starting a local one
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # the sampling backend: native | vllm

    def __post_init__(self) -> None:
        self.task = task_settings(self.task_name, self.task)
        missing = [] if self.init_from else [m for m in INIT_MEMBERS if not hasattr(task_spec(self.task_name).task, m)]
        if missing:
            raise ConfigError(f"init_from: null trains a policy on the solver traces of task {self.task_name!r}, "
                              f"which has no {', '.join(missing)}; set init_from to a checkpoint")
        phases = []
        for i, phase in enumerate(self.phases):
            phases.append(from_dict(PhaseConfig, phase, f"phases[{i}].") if isinstance(phase, dict) else phase)
            if not isinstance(phases[-1], PhaseConfig):
                raise ConfigError(f"phases[{i}]: expected a mapping of phase settings")
        self.phases = tuple(phases)
        if not self.phases or sum(p.rounds for p in self.phases) < 1:
            raise ConfigError("the loop needs at least one phase with rounds >= 1")
        unknown = sorted(set(self.report_to) - set(SINKS))
        if unknown:
            raise ConfigError(f"report_to: unknown sink(s) {unknown}; choose from {', '.join(SINKS)}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.workers > 1 and self.policy.backend == "vllm":
            raise ConfigError("policy.backend=vllm runs one vLLM engine beside the learner in this process; "
                              "--workers N replicates the native engine (use one or the other)")
        if self.prompt not in ("none", "task", "reasoning"):
            raise ConfigError(f"prompt must be none, task or reasoning, got {self.prompt!r}")

    def build_task(self):
        """The task this config trains and evaluates on."""
        return task_spec(self.task_name).build(self.task)

    @property
    def rounds(self) -> int:
        return sum(p.rounds for p in self.phases)

    def schedule(self) -> list[tuple[int, PhaseConfig]]:
        """(round number r = 1..R, its phase) for every round."""
        return [(r, phase) for r, phase in enumerate((p for p in self.phases for _ in range(p.rounds)), start=1)]


def load_loop_config(path: str | Path | None, overrides: list[str] = (), cls: type = LoopConfig, base=None):
    """Defaults (or `base`), then the YAML file, then `key.path=value` overrides (a list index is a number:
    phases.1.rounds=3; new keys are allowed only under a searcher's free-form `options`; `task_name` is applied first,
    and the `task` settings of another task start from its defaults, in the file as in the overrides). Unknown keys
    raise ConfigError. `cls` is LoopConfig or a subclass of it (the demo's DemoConfig)."""
    base = base if base is not None else cls()
    name = read_yaml(path).get("task_name", base.task_name) if path is not None else base.task_name
    if name != base.task_name:  # another task: the file's `task` keys go over that task's defaults, not these
        base = copy.copy(base)
        base.task_name, base.task = name, None
    config = load(cls, path, base=base)
    if not overrides:
        return config
    data = json.loads(json.dumps(to_dict(config)))  # plain dicts and lists
    for assignment in sorted(overrides, key=lambda a: a.split("=", 1)[0].strip() != "task_name"):  # task_name first
        name = data["task_name"]
        _assign(data, assignment)
        if data["task_name"] != name:  # another task: its settings start from its own defaults
            data["task"] = json.loads(json.dumps(to_dict(task_settings(data["task_name"]))))
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
            node[key] = parse_value(raw, path)
        else:
            node, parent_key = node[key], str(key)
