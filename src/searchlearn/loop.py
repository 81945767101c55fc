"""The search-and-learn loop: rounds of training-time search → reward → learn → evaluate → checkpoint.

Round r of a phase (loop_config.PhaseConfig):
  1. search: fresh training problems (seeded by the round) go through the phase's searcher (BoN, beam, DVTS, MCTS,
     revision), guided by the reward's process scorer; every trajectory is labelled by the outcome reward;
  2. learn: a search learner turns the results into data (expert iteration: verifier-correct trajectories → SFT;
     DPO: correct × incorrect solutions; step-DPO: sibling steps of the trees) and trains on it; an online learner
     (GRPO family, PPO) samples its own rollouts from the round's problems;
  3. evaluate: held-out greedy pass@1, maj@k and pass@k (evaluate.py), the demo's held-out split.
Every stage's result is written atomically under OUT/stages/ (demo.Run), the search stage with the learner's data, and
every learner checkpoints under OUT/ckpt/round{r}, so `--resume` continues a killed run at the interrupted stage:
finished stages are read back, an interrupted learner resumes from its last checkpoint, nothing is redone.
Outputs: metrics.jsonl (per step and per round), metrics.json (init, final, rounds), report.html, OUT/policy.
"""

from __future__ import annotations

import time
from html import escape
from pathlib import Path
from typing import Callable

from searchlearn import progress
from searchlearn.config import ConfigError, to_dict
from searchlearn.demo import Run, build_model, init_examples
from searchlearn.evaluate import evaluate, headline
from searchlearn.learn import checkpoint
from searchlearn.learn.sft import train_sft
from searchlearn.loop_config import LoopConfig, PhaseConfig
from searchlearn.loop_parts import LEARNERS, REWARDS, SEARCHERS, label_outcomes
from searchlearn.policy.hf import load_policy
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.prompts import format_problems
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.report import html, plots
from searchlearn.report.loop_plots import accuracy_vs_compute, reward_curves
from searchlearn.report.metrics import write_json
from searchlearn.tasks.countdown import CountdownTask


def round_seed(seed: int, r: int) -> int:
    """The seed of round r: its training problems, search, and learner (disjoint from the demo's 0, 1000·s + r)."""
    return 1_000_003 * (seed + 1) + 7919 * r


def searcher_label(phase: PhaseConfig) -> str:
    """What made the round's training data: the searcher and its budget, or the online learner's own sampling."""
    if LEARNERS[phase.learner].kind == "online":
        group = phase.ppo.samples_per_prompt if phase.learner == "ppo" else phase.grpo.group_size
        return f"sampling(G={group})"
    s = phase.searcher
    return f"{s.name}(n={s.n}" + (f", max_tokens={s.max_tokens})" if s.max_tokens else ")")


def load_local(path: str | Path) -> LocalPolicy:
    """A checkpoint as a LocalPolicy (the project's engine and model: what the learners train)."""
    policy = load_policy(path, backend="native")
    if not isinstance(policy, LocalPolicy):
        raise ValueError(f"{path}: the loop trains the project's own model; this checkpoint loads as {type(policy)}")
    return policy


class _Stages:
    """Timed, atomic, resumable stages of one run: a finished stage is read back, never redone."""

    def __init__(self, run: Run):
        self.run, self.results = run, {}

    def __call__(self, name: str, fn: Callable[[], dict]) -> dict:
        result = self.run.done(name)
        if result is None:
            t0 = time.time()
            result = fn()
            result["seconds"] = time.time() - t0
            write_json(self.run.stage(name), result)
        self.results[name] = {k: v for k, v in result.items() if k != "data"}
        return result


def run_loop(cfg: LoopConfig, out: str | Path = "runs/loop", resume: bool = False) -> dict:
    """Run (or, with `resume`, continue) the loop in `out`; returns metrics.json's content."""
    t_start = time.time()
    if cfg.init_from and Path(cfg.init_from).resolve().is_relative_to(Path(out).resolve()):
        raise ConfigError(f"the run directory {out} holds init_from {cfg.init_from}, which the run would overwrite; "
                          "choose another --out")
    run = Run(out, resume)
    write_json(run.out / "config.json", to_dict(cfg))
    task = CountdownTask(cfg.task)
    stage = _Stages(run)
    ks = list(cfg.eval.ks)

    current = _initial_policy(cfg, run, task, stage)
    policy = load_local(current)
    test = format_problems(task.problems("test", cfg.eval.problems, seed=cfg.seed + 1), policy.tokenizer, task.name,
                           cfg.prompt)

    def evaluation(r: int) -> dict:
        progress.say(f"evaluating on {len(test)} held-out problems (greedy + {cfg.eval.samples} samples each)")
        ev = cfg.eval
        result = evaluate(policy, task, test, n=ev.samples, ks=ev.ks, temperature=ev.temperature,
                          max_new_tokens=ev.max_new_tokens, seed=cfg.seed)
        run.log({"phase": "eval", "round": r, **{f"search/{k}": v for k, v in headline(result["metrics"], ks).items()},
                 "eval/generated_tokens": result["metrics"]["ledger/generated_tokens"]})
        return result

    n_params = policy.model.num_parameters()
    init_eval = stage("eval_init", lambda: evaluation(0))["metrics"]
    rows = [{"round": 0, "learner": "init", "searcher": "", **headline(init_eval, ks), "train_generated_tokens": 0}]
    for r, phase in cfg.schedule():
        name = f"round{r}"
        learned = _round(r, phase, cfg, run, task, policy, stage)
        if checkpoint.exists(run.ckpt(name)):
            current = run.ckpt(name)
            policy = load_local(current)
        metrics = stage(f"eval_{name}", lambda r=r: evaluation(r))["metrics"]
        rows.append({"round": r, "learner": phase.learner, "searcher": searcher_label(phase), **headline(metrics, ks),
                     "train_generated_tokens": learned["train_generated_tokens"],
                     "train_accuracy": learned.get("train_accuracy")})

    results = stage.results
    final = results[f"eval_round{cfg.rounds}"]
    metrics = {
        "init": headline(results["eval_init"]["metrics"], ks),
        "final": headline(final["metrics"], ks),
        "rounds": rows,
        "train_generated_tokens": sum(row["train_generated_tokens"] for row in rows),
        "wall_seconds": sum(s["seconds"] for s in results.values()),
        "run_seconds": time.time() - t_start,
        "params": n_params,
        "init_from": cfg.init_from,
        "init_detail": results["eval_init"]["metrics"],
        "final_detail": final["metrics"],
    }
    write_json(run.out / "metrics.json", metrics)
    policy.model.save_pretrained(run.out / "policy")
    policy.tokenizer.save(run.out / "policy")
    build_loop_report(run.out, metrics, results, ks, run.log.records(), cfg)
    progress.say(f"wrote {run.out / 'report.html'}: greedy pass@1 {metrics['init']['pass@1']:.3f} → "
                 f"{metrics['final']['pass@1']:.3f} over {cfg.rounds} rounds in {metrics['wall_seconds']:.0f} s")
    return metrics


def _initial_policy(cfg: LoopConfig, run: Run, task: CountdownTask, stage: _Stages) -> Path:
    """The round-0 checkpoint: `init_from`, or policy initialization (the demo's SFT on traces) into OUT/ckpt/init."""
    if cfg.init_from:
        path = Path(cfg.init_from)
        if not path.exists():
            raise FileNotFoundError(f"init_from {path}: no such checkpoint; run `searchlearn demo` (or `searchlearn "
                                    "init`) first, point init_from at a checkpoint, or set init_from: null to "
                                    "initialize a policy here (init.* settings)")
        return path
    demo_cfg = cfg.demo_config()
    tokenizer = TaskTokenizer(task.words, max_number=cfg.task.max_intermediate, digits=cfg.init.model.digit_tokens)

    def initialize() -> dict:
        model = build_model(demo_cfg, tokenizer)
        progress.say(f"policy initialization: {cfg.init.n_train} '{cfg.task.style}' traces, "
                     f"{model.num_parameters() / 1e6:.2f}M parameters, {cfg.init.sft.steps} SFT steps")
        examples = init_examples(task, tokenizer, demo_cfg)
        stats = train_sft(model, examples, cfg.init.sft, tokenizer.pad_id, run.ckpt("init"), tokenizer, run.log,
                          name="init")
        return {"sft": stats, "mean_trace_tokens": sum(len(c) for _, c in examples) / len(examples)}

    stage("init", initialize)
    return run.ckpt("init")


def _round(r: int, phase: PhaseConfig, cfg: LoopConfig, run: Run, task: CountdownTask, policy: LocalPolicy,
           stage: _Stages) -> dict:
    """Round r's search stage (search learners) and learning stage, one after the other (a finished stage is read
    back). The learner trains `policy.model` in place and checkpoints it to OUT/ckpt/round{r}. Returns the learning
    stage: the learner's stats, train_generated_tokens and train_accuracy."""
    name, seed, spec = f"round{r}", round_seed(cfg.seed, r), LEARNERS[phase.learner]
    problems = format_problems(task.problems("train", phase.problems, seed=seed), policy.tokenizer, task.name,
                               cfg.prompt)
    rewards = REWARDS[phase.reward](task, policy)
    if run.done(f"{name}_learn") is None:
        progress.say(f"round {r}/{cfg.rounds}: {phase.learner} on {len(problems)} problems, {searcher_label(phase)}")
    searched = None
    if spec.kind == "search":
        searched = stage(f"{name}_search", lambda: _search(r, phase, problems, policy, task, rewards, seed, run.log))
    return stage(f"{name}_learn", lambda: _learn(r, phase, run, policy, problems, rewards, seed, searched))


def _learn(r: int, phase: PhaseConfig, run: Run, policy: LocalPolicy, problems, rewards, seed: int,
           searched: dict | None) -> dict:
    """Train on the search stage's data (search learners) or on rollouts of the round's problems (online learners)."""
    name, spec = f"round{r}", LEARNERS[phase.learner]
    if searched is not None:
        data, info = searched["data"], searched["stats"]
        tokens, accuracy = round(info["ledger/generated_tokens"]), info["search/train_accuracy"]
    else:
        data, tokens, accuracy = problems, None, None
    if not data:
        progress.say(f"round {r}: no training data from the search; the policy is unchanged")
        return {"learn": {"steps": 0, "skipped": "no training data"}, "train_generated_tokens": tokens,
                "train_accuracy": accuracy}
    stats = spec.train(policy, data, phase, seed, rewards, run.ckpt(name), run.log, name)
    if spec.kind == "online":
        per_step = {rec["step"]: rec for rec in run.log.records() if rec.get("phase") == name and "step" in rec}
        tokens = sum(rec.get("ledger/generated_tokens", 0) for rec in per_step.values())  # last record of each step
        solved = [rec["learn/solved"] for rec in per_step.values() if "learn/solved" in rec]
        accuracy = sum(solved) / len(solved) if solved else None
    return {"learn": stats, "train_generated_tokens": tokens, "train_accuracy": accuracy}


def _search(r: int, phase: PhaseConfig, problems, policy, task, rewards, seed: int, log) -> dict:
    """Training-time search on the round's problems, outcome labels, and the learner's data (kept in the stage)."""
    results = SEARCHERS[phase.searcher.name].run(problems, policy, task, rewards, phase.searcher, seed)
    label_outcomes(results, problems, rewards.outcome)
    data, extra = LEARNERS[phase.learner].prepare(results, problems, policy, phase, seed)
    trajectories = [t for res in results for t in res.trajectories]
    spent = {field: sum(getattr(res.ledger, field) for res in results)
             for field in ("generated_tokens", "prefilled_tokens", "reward_tokens")}
    stats = {"search/train_solve_rate": sum(any(t.correct for t in res.trajectories) for res in results) / len(results),
             "search/train_accuracy": sum(bool(t.correct) for t in trajectories) / max(1, len(trajectories)),
             "search/trajectories": len(trajectories), **extra,
             **{f"ledger/{k}": v for k, v in spent.items()}}
    log({"phase": f"round{r}_search", "round": r, **stats})
    return {"stats": stats, "data": data}


def build_loop_report(out: Path, metrics: dict, stages: dict, ks: list[int], records: list[dict], cfg: LoopConfig
                      ) -> Path:
    """report.html: held-out accuracy (init vs final, per round), loss and reward curves, training compute, traces."""
    online = [f"round{r}" for r, p in cfg.schedule() if LEARNERS[p.learner].kind == "online"]
    losses = [rec for rec in records if rec.get("phase") not in online]  # SFT / DPO losses (RL losses are signed)
    figures = [
        plots.pass_at_k({"init": metrics["init_detail"], "final": metrics["final_detail"]}, ks, out / "pass_at_k.png"),
        plots.rounds(metrics["rounds"], out / "rounds.png"),
        accuracy_vs_compute(metrics["rounds"], out / "accuracy_vs_compute.png"),
    ]
    if any("learn/loss" in rec for rec in losses):
        figures.append(plots.loss_curves(losses, out / "loss.png"))
    if online:
        figures.append(reward_curves(records, online, out / "reward.png"))
    summary = (f"<p>{metrics['params'] / 1e6:.2f}M parameters, starting from "
               f"{escape(str(metrics['init_from'] or 'policy initialization in this run'))}; "
               f"{len(metrics['rounds']) - 1} rounds, {metrics['train_generated_tokens']:,} tokens generated by "
               f"training-time search and rollouts, wall time {metrics['wall_seconds']:.0f} s.</p>")
    columns = list(metrics["init"].keys())
    round_cols = [c for c in metrics["rounds"][-1] if c != "round"]
    search_rows = {name.removesuffix("_search"): s["stats"] for name, s in stages.items() if name.endswith("_search")}
    search_cols = sorted({k for row in search_rows.values() for k in row})
    sections = [
        ("Held-out accuracy", summary + html.table({"init": metrics["init"], "final": metrics["final"]}, columns)),
        ("Rounds", html.table({f"round {row['round']}": row for row in metrics["rounds"]}, round_cols)),
        ("Figures", "".join(html.image(f) for f in figures)),
    ]
    if search_rows:
        sections.append(("Training-time search", html.table(search_rows, search_cols)))
    sections += [
        ("Example traces (initial policy, greedy)", html.examples(stages["eval_init"]["examples"][:4])),
        ("Example traces (final policy, greedy)", html.examples(stages[f"eval_round{cfg.rounds}"]["examples"][:4])),
    ]
    path = out / "report.html"
    path.write_text(html.page("searchlearn loop report", sections))
    return path
