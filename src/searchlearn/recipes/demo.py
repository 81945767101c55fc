"""The main job: Countdown from scratch through the whole roadmap on a CPU.

The demo is the search-and-learn loop (loop.py) with a default config, plus test-time search on the final policy:
  1. policy initialization: SFT of a fresh model on solver traces with reasoning behaviours (initialize.py);
  2. rounds of the loop (by default one round of GRPO on the policy's own samples), each evaluated on held-out
     problems;
  3. a test-time search sweep (strategies × budgets) on held-out problems;
  4. reward models from the final policy: Monte-Carlo step labels, PRM/ORM heads, their quality against Countdown's
     gold labels next to the policy's own confidence and self-evaluation (reward/pipeline.py);
  5. report.html with every figure, metrics.json, metrics.jsonl and the final policy in OUT/policy.
Every stage is resumable (run.py): `--resume` continues a killed run where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from searchlearn import progress
from searchlearn.config import ConfigError, to_dict
from searchlearn.distributed.runtime import workers
from searchlearn.learn.grpo import GRPOConfig
from searchlearn.learn.sft import SFTConfig
from searchlearn.loop.config import LoopConfig, PhaseConfig, SearcherConfig
from searchlearn.loop.initialize import InitConfig, ModelSize
from searchlearn.loop.rounds import finish, stage_names, summary, train
from searchlearn.loop.stages import Run
from searchlearn.report.build import reward_section, sweep_section, trees_section
from searchlearn.report.curves import plot_curves
from searchlearn.report.metrics import write_json
from searchlearn.report.plots import reliability
from searchlearn.reward.learned import LearnedScorer
from searchlearn.reward.models import KINDS, RewardTrainConfig
from searchlearn.reward.pipeline import (
    evaluate_rewards,
    fit,
    label_agreement,
    label_solutions,
)
from searchlearn.reward.process import ConfidenceScorer
from searchlearn.reward.scorers import make_scorer
from searchlearn.reward.selfeval import SelfEvalScorer
from searchlearn.search.beam import BeamConfig, beam_search
from searchlearn.search.budget import Budget
from searchlearn.search.evaluate import EvalConfig
from searchlearn.search.mcts import MCTSConfig, mcts
from searchlearn.search.sweep import SweepConfig, sweep
from searchlearn.tasks.countdown import CountdownConfig


def default_phases() -> tuple[PhaseConfig, ...]:
    """A round of GRPO: 24 steps of 16 problems × 8 samples, one on-policy update per rollout at lr 5e-5.

    From a 1000-step initialization (held-out greedy pass@1 0.445, seed 0) this raised held-out accuracy to 0.536 in
    its first 3,072 samples (docs/learning.md, item 13): the policy solves a third of its samples, so most groups
    carry a learning signal (the edge of competence). Expert iteration on this task gains what its solver traces
    give (docs/learning.md, item 2), so the demo's round is RL on the policy's own samples."""
    return (
        PhaseConfig(rounds=1, learner="grpo", problems=1024,
                    grpo=GRPOConfig(steps=24, prompts_per_step=16, group_size=8, max_new_tokens=288, lr=5e-5,
                                    epochs=1, minibatch_size=0, checkpoint_every=4)),
    )


@dataclass
class RewardStageConfig:
    problems: int = 16  # training problems whose sampled solutions get Monte-Carlo step labels (0 = no stage)
    samples: int = 4  # solutions sampled per training problem
    rollouts: int = 4  # M completions per step prefix (hard label: any correct; soft: the fraction)
    models: tuple[str, ...] = ("prm_soft", "orm", "implicit")  # heads: KIND_LABEL (+ prm_hard, value_soft, ppm_soft)
    outcome_problems: int = 256  # more training problems with outcome labels only (no rollouts), for orm / implicit
    aggregate: str = "min"  # how a learned model's step scores rank a solution (last | min | prod | mean)
    train: RewardTrainConfig = field(default_factory=lambda: RewardTrainConfig(steps=50))  # each head's training
    held_out: float = 0.2  # share of the labelled problems held out: early stopping and the choice of backbone
    backbones: tuple[str, ...] = ()  # full | frozen | last:K to choose from by held-out loss (empty: train.backbone)
    eval_problems: int = 16  # held-out problems of the reward evaluation
    eval_samples: int = 16  # N solutions per held-out problem: rerank@N against maj@N and pass@N
    guide: str = "implicit"  # the head that guides a second search sweep (one of `models`; "" = none)

    def __post_init__(self) -> None:
        for name in self.models:
            kind, _, label = name.partition("_")
            if kind not in KINDS or label not in ("", "soft", "hard"):
                raise ConfigError(f"reward.models: {name!r} is not KIND_LABEL ({'|'.join(KINDS.names())}, soft|hard)")
        if min(self.samples, self.rollouts, self.eval_problems, self.eval_samples) < 1 or self.problems < 0:
            raise ConfigError("reward: problems >= 0; samples, rollouts, eval_problems, eval_samples >= 1")
        if self.outcome_problems < 0:
            raise ConfigError("reward.outcome_problems must be >= 0")
        if self.guide and self.guide not in self.models:
            raise ConfigError(f"reward.guide {self.guide!r} is not one of reward.models {list(self.models)}")
        if not 0 <= self.held_out < 1:
            raise ConfigError(f"reward.held_out must be in [0, 1), got {self.held_out}")
        for backbone in self.backbones:
            try:
                RewardTrainConfig(backbone=backbone)
            except ValueError as e:
                raise ConfigError(f"reward.backbones: {e}") from e


@dataclass
class DemoConfig(LoopConfig):
    init_from: str | None = None  # the demo initializes its own policy (a checkpoint here skips initialization)
    task: Any = field(default_factory=lambda: CountdownConfig(checks="tool", verdict="tool", corrections=0.5))  # the
    #   environment computes each try's need list and the last move's verdict (docs/environments.md)
    init: InitConfig = field(default_factory=lambda: InitConfig(
        sft=SFTConfig(steps=1000, batch_size=32, lr=3e-3, compile=True)))  # the edge of competence: ~0.45 held-out
    phases: tuple[PhaseConfig, ...] = field(default_factory=default_phases)  # the loop's rounds, in order
    sweep: SweepConfig = field(default_factory=lambda: SweepConfig(
        strategies=("bon", "beam", "dvts"), budgets=(4, 16), scorer="gold", max_new_tokens=288))  # test-time search
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(problems=1000, samples=1, ks=(1,)))  # greedy pass@1
    #   on 1000 held-out problems (standard error ≤ 0.016) and the accuracy of one sample
    sweep_problems: int = 8  # held-out problems of the sweep (0 = no sweep)
    reward: RewardStageConfig = field(default_factory=lambda: RewardStageConfig(
        problems=4, outcome_problems=64, eval_problems=4, train=RewardTrainConfig(steps=30)))  # reward models from
    #   the final policy: a small showcase of the stage (docs/reward_models.md has the measured ones)
    tree_problems: int = 1  # held-out problems whose beam-search and MCTS trees the report draws (0 = none)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sweep_problems < 0 or self.sweep_problems > self.eval.problems:
            raise ConfigError(f"sweep_problems must be in [0, eval.problems = {self.eval.problems}]")
        if not 0 <= self.tree_problems <= self.eval.problems:
            raise ConfigError(f"tree_problems must be in [0, eval.problems = {self.eval.problems}]")


def quick(cfg: DemoConfig) -> DemoConfig:
    """The ≤60 s smoke profile: a smaller model, data and budget, every stage still run."""
    cfg.init = InitConfig(model=ModelSize(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                          num_key_value_heads=2, intermediate_size=192),
                          n_train=1500, sft=SFTConfig(steps=150, batch_size=32, lr=3e-3, warmup_steps=10,
                                                      checkpoint_every=50))
    cfg.phases = (
        PhaseConfig(rounds=1, learner="expert_iteration", problems=64,
                    searcher=SearcherConfig(name="bon", n=4, max_new_tokens=128),
                    sft=SFTConfig(steps=30, lr=1e-3, warmup_steps=5, checkpoint_every=10)),
        PhaseConfig(rounds=1, learner="grpo", problems=64,
                    grpo=GRPOConfig(steps=3, prompts_per_step=8, group_size=4, max_new_tokens=128, lr=5e-5,
                                    checkpoint_every=1)),
    )
    cfg.eval = EvalConfig(problems=32, samples=4, ks=(1, 4), max_new_tokens=128)
    cfg.sweep_problems = 8
    cfg.sweep = SweepConfig(strategies=("bon", "beam"), budgets=(2, 4), scorer="gold", max_new_tokens=128)
    cfg.reward = RewardStageConfig(problems=8, samples=2, rollouts=2, models=("prm_soft", "orm"), outcome_problems=8,
                                   train=RewardTrainConfig(steps=10), eval_problems=8, eval_samples=4,
                                   guide="prm_soft")
    return cfg


def run_demo(cfg: DemoConfig, out: str | Path = "runs/demo", resume: bool = False) -> dict:
    """Run (or, with `resume`, continue) the demo in `out`; returns metrics.json's content."""
    run = Run(out, resume, cfg.report_to, to_dict(cfg))
    write_json(run.out / "config.json", to_dict(cfg))
    guided = bool(cfg.sweep_problems and cfg.reward.problems and cfg.reward.guide)
    run.plan(stage_names(cfg) + ["sweep"] * bool(cfg.sweep_problems) + ["reward"] * bool(cfg.reward.problems)
             + ["sweep_learned"] * guided + ["trees"] * bool(cfg.tree_problems))
    with workers(cfg.workers, cfg.ray_address):
        return _demo(cfg, run)


def _demo(cfg: DemoConfig, run: Run) -> dict:
    """The loop's rounds, then the search sweep, the reward stage, the sweep guided by a learned head, and the trees,
    each a resumable stage of `run`."""
    trained = train(cfg, run)
    sections = []
    problems = trained.test[: cfg.sweep_problems]

    def search_sweep(scfg: SweepConfig, label: str) -> dict:
        progress.say(f"search sweep: {', '.join(scfg.strategies)} × budgets {scfg.budgets} on {len(problems)} "
                     f"held-out problems ({label} scorer)")
        return {"rows": sweep(trained.policy, trained.task, problems, scfg)}

    rows = run.stage("sweep", lambda: search_sweep(cfg.sweep, cfg.sweep.scorer))["rows"] if cfg.sweep_problems else []
    metrics = summary(cfg, run, trained)
    if cfg.reward.problems:
        result = run.stage("reward", lambda: reward_models(cfg, run, trained))
        write_json(run.out / "reward_eval.json", {k: v for k, v in result.items() if k != "seconds"})
        figure = reliability({name: {"ece": r["ece"], "bins": r["calibration"]} for name, r in result.items()
                              if isinstance(r, dict) and "calibration" in r}, run.out / "calibration.png")
        sections.append(reward_section(result, figure))
        metrics["reward"] = {name: {k: r[k] for k in ("step_auc", "first_error_acc", "outcome_auc", "ece")
                                    if k in r} | {"rerank": r[f"rerank@{cfg.reward.eval_samples}"]}
                             for name, r in result.items() if isinstance(r, dict) and "step_auc" in r}
        head = run.out / "reward" / cfg.reward.guide
        if rows and cfg.reward.guide and not head.exists():
            progress.say(f"search sweep guided by {cfg.reward.guide}: skipped, the head was not trained")
        elif rows and cfg.reward.guide:
            guided = replace(cfg.sweep, scorer=f"learned:{head}")
            learned = run.stage("sweep_learned", lambda: search_sweep(guided, f"learned {cfg.reward.guide}"))["rows"]
            rows = with_scorer(rows, cfg.sweep.scorer) + with_scorer(learned, f"learned:{cfg.reward.guide}", False)
        metrics["wall_seconds"] = run.seconds  # the reward stage included
    if rows:
        write_json(run.out / "search_curves.json", rows)
        figure = plot_curves(rows, run.out / "search_curves.png", "Test-time search on the final policy")
        sections.insert(0, sweep_section(rows, figure))
    if cfg.tree_problems:  # last, so that nothing before it depends on it
        sections.append(trees_section(run.stage("trees", lambda: search_trees(cfg, trained))["trees"]))
    finish(cfg, run, trained, metrics, sections)
    return metrics


def with_scorer(rows: list[dict], label: str, keep_free: bool = True) -> list[dict]:
    """Sweep rows named by the scorer that guided them ("beam (gold)"), for one figure of two sweeps. Majority vote and
    pass@n use no scorer: both sweeps draw the same samples, so they are kept from the first only (`keep_free`)."""
    free = ("bon_majority", "pass@n")
    return [r | {"scorer": label} if r["strategy"] in free else r | {"strategy": f"{r['strategy']} ({label})",
                                                                     "scorer": label}
            for r in rows if keep_free or r["strategy"] not in free]


def search_trees(cfg: DemoConfig, trained) -> dict:
    """A small beam search (n = 4, width 2) and MCTS (k = 3, 12 simulations) on the first held-out problems, guided
    by the sweep's scorer: the trees the report draws, with the path to each answer."""
    problems = trained.test[: cfg.tree_problems]
    scorer = make_scorer(cfg.sweep.scorer, trained.task, trained.policy)
    common = dict(max_new_tokens=cfg.eval.max_new_tokens, delimiter=trained.task.step_delimiter, seed=cfg.seed)
    runs = {"beam": beam_search(problems, trained.policy, trained.task, scorer, Budget(4),
                                BeamConfig(width=2, **common)),
            "mcts": mcts(problems, trained.policy, trained.task, scorer, Budget(4),
                         MCTSConfig(k=3, simulations=12, **common))}
    trees = []
    for name, results in runs.items():
        for problem, result in zip(problems, results):
            tree, answer = result.tree, result.answer or ""
            on_path = [i for i in range(1, len(tree.nodes)) if tree.text(i) and answer.startswith(tree.text(i))]
            end = max(on_path, key=lambda i: (len(tree.text(i)), tree.nodes[i].terminal), default=0)
            trees.append({"strategy": name, "scorer": cfg.sweep.scorer, "prompt": problem.prompt, "answer": answer,
                          "correct": trained.task.verify(problem, answer).correct,
                          "chosen": tree.path(end) if end else [],
                          "tree": asdict(tree)})
    return {"trees": trees}


def reward_models(cfg: DemoConfig, run: Run, trained) -> dict:
    """MC labels of the final policy's solutions to training problems → each head of `cfg.reward.models` (saved to
    OUT/reward/NAME) → all of them, the policy's confidence and its self-evaluation scored on held-out solutions."""
    rc, policy, task = cfg.reward, trained.policy, trained.task
    problems = task.problems("train", rc.problems, seed=cfg.seed + 17)
    progress.say(f"reward models: {rc.samples} solutions to {len(problems)} training problems, "
                 f"{rc.rollouts} rollouts per step; heads {', '.join(rc.models)}")
    t0 = time.time()
    labels = label_solutions(policy, task, problems, rc.samples, rc.rollouts, cfg.eval.max_new_tokens, cfg.seed)
    agreement = {**label_agreement(labels, task), "seconds": time.time() - t0}
    agreement["labels_per_second"] = agreement["steps"] / max(agreement["seconds"], 1e-9)
    outcomes = []  # outcome labels alone (the verifier): a sample per solution, so hundreds of problems are affordable
    if rc.outcome_problems and any(KINDS[name.partition("_")[0]].outcome_only for name in rc.models):
        t0 = time.time()
        extra = task.problems("train", rc.outcome_problems, seed=cfg.seed + 19)
        outcomes = label_solutions(policy, task, extra, rc.samples, 0, cfg.eval.max_new_tokens, cfg.seed + 19)
        agreement["outcome_labelled"] = {"solutions": len(outcomes), "problems": len(extra),
                                         "seconds": time.time() - t0}
    scorers = {"confidence": (ConfidenceScorer(policy, task), "mean"),
               "selfeval": (SelfEvalScorer(policy, task), "mean")}
    trained_stats = {}
    for name in rc.models:
        kind, _, label = name.partition("_")
        try:
            data = labels + outcomes if KINDS[kind].outcome_only else labels
            model, stats = fit(policy, data, kind, label or "soft", rc.train, log=run.log, held_out=rc.held_out,
                               backbones=rc.backbones)
        except ValueError as e:  # no training examples (PPM: no sibling pair with a margin): reported, not fatal
            trained_stats[name] = {"skipped": str(e)}
            progress.say(f"reward models: {name} skipped: {e}")
            continue
        model.save(run.out / "reward" / name, policy.tokenizer, {"name": name, "label": label or "soft",
                                                                  "aggregate": rc.aggregate, "train": stats})
        scorers[name] = (LearnedScorer(model, policy.tokenizer, task, rc.aggregate), rc.aggregate)
        trained_stats[name] = stats
    test = trained.test[: rc.eval_problems]
    progress.say(f"reward eval: {len(scorers)} scorers on {rc.eval_samples} solutions to {len(test)} held-out problems")
    result = evaluate_rewards(policy, task, test, rc.eval_samples, scorers, cfg.eval.max_new_tokens, cfg.seed + 2)
    result["_data"]["train"] = trained_stats
    result["_data"]["labelled_solutions"] = len(labels)
    result["_data"]["outcome_labelled_solutions"] = len(outcomes)
    result["_data"]["labels"] = agreement  # the MC labels' own AUC against gold, and their throughput
    return result
