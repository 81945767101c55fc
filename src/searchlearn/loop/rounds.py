"""The search-and-learn loop: rounds of training-time search → reward → learn → evaluate → checkpoint.

Round r of a phase (loop_config.PhaseConfig):
  1. search: fresh training problems (seeded by the round) go through the phase's searcher (BoN, beam, DVTS, MCTS,
     revision), guided by the reward's process scorer; every trajectory is labelled by the outcome reward;
  2. learn: a search learner turns the results into data (expert iteration: verifier-correct trajectories → SFT;
     DPO: correct × incorrect solutions; step-DPO: sibling steps of the trees) and trains on it; an online learner
     (GRPO family, PPO) samples its own rollouts from the round's problems;
  3. evaluate: held-out greedy pass@1, maj@k and pass@k (evaluate.py), the demo's held-out split.
Every stage's result is written atomically under OUT/stages/ (run.Run), the search stage with the learner's data, and
every learner checkpoints under OUT/ckpt/round{r}, so `--resume` continues a killed run at the interrupted stage:
finished stages are read back, an interrupted learner resumes from its last checkpoint, nothing is redone.
Learning curves (loop/curve.py): greedy pass@1 on a fixed held-out set at the start, every `curve.every` learner
steps (or at every·2^k steps) and at each round's end, against the samples, tokens and seconds spent so far.
Outputs: metrics.jsonl (per step and per round), metrics.json (init, final, rounds, curve), report.html, OUT/policy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

from searchlearn import progress
from searchlearn.config import ConfigError, to_dict
from searchlearn.contracts import Task, TrainablePolicy
from searchlearn.distributed.runtime import workers
from searchlearn.distributed.shard import map_problems
from searchlearn.learn import checkpoint
from searchlearn.loop.config import LoopConfig, PhaseConfig, PolicyConfig
from searchlearn.loop.curve import CurveProbe, curve_points
from searchlearn.loop.initialize import initialize
from searchlearn.loop.learners import LEARNERS, label_outcomes, round_rewards
from searchlearn.loop.stages import Run
from searchlearn.policy.hf import UnsupportedCheckpoint, load_policy
from searchlearn.policy.prompts import format_problems
from searchlearn.policy.vllm_policy import VLLMPolicy
from searchlearn.report.build import build_report
from searchlearn.report.metrics import write_json
from searchlearn.search.budget import Budget
from searchlearn.search.evaluate import evaluate, headline
from searchlearn.search.registry import SEARCHERS
from searchlearn.types import Problem


CURVE_TRAIN_SEED = 999_983  # seeds the curve's training-split problems (apart from every round's, `round_seed`)


def round_seed(seed: int, r: int) -> int:
    """The seed of round r: its training problems, search, and learner (disjoint from the demo's 0, 1000·s + r)."""
    return 1_000_003 * (seed + 1) + 7919 * r


def searcher_label(phase: PhaseConfig) -> str:
    """What made the round's training data: the searcher and its budget, or the online learner's own sampling."""
    spec = LEARNERS[phase.learner]
    if spec.kind == "online":
        return f"sampling(G={getattr(phase, spec.section).group_size})"
    s = phase.searcher
    return f"{s.name}(n={s.n}" + (f", max_tokens={s.max_tokens})" if s.max_tokens else ")")


def load_local(path: str | Path, backend: PolicyConfig | None = None, seed: int = 0,
               current: TrainablePolicy | None = None) -> TrainablePolicy:
    """A checkpoint as a trainable policy (the project's engine and model: what the learners train): a searchlearn
    checkpoint or a Hugging Face Llama/Qwen2/Mistral one; any other is a ConfigError saying why. With
    `backend.backend == "vllm"` a vLLM engine samples for it: `current`'s engine when it has one (the checkpoint's
    weights go into it at the next generate), else a new one."""
    try:
        policy = load_policy(path, backend="native")
    except UnsupportedCheckpoint as e:
        reason = str(e).removesuffix("; load it with backend='transformers'")
        raise ConfigError(f"{path}: the loop trains the project's own model (Llama/Qwen2/Mistral checkpoints), which "
                          f"cannot hold this one: {reason}. `searchlearn eval --backend transformers` can evaluate it, "
                          "but the loop cannot train it") from e
    if not isinstance(policy, TrainablePolicy):
        raise ValueError(f"{path}: the loop trains the project's own model; this checkpoint loads as {type(policy)}")
    if backend is None or backend.backend != "vllm":
        return policy
    if isinstance(current, VLLMPolicy):
        return current.adopt(policy)
    return VLLMPolicy.open(policy, Path(path), backend.vllm, seed=seed)


@dataclass
class Trained:
    """What the rounds leave: the final policy, the task and held-out problems, one row per round."""

    policy: TrainablePolicy
    task: Task
    test: list[Problem]
    rows: list[dict]
    n_params: int


def train(cfg: LoopConfig, run: Run) -> Trained:
    """Initial policy (`init_from`, or policy initialization here), its held-out evaluation, then every round:
    search → reward → learn → evaluate, each a resumable stage of `run`."""
    task = cfg.build_task()
    ks = list(cfg.eval.ks)
    run.plan(stage_names(cfg))
    current = Path(cfg.init_from) if cfg.init_from else initialize(run, task, cfg.init, cfg.seed)
    if not current.exists():
        raise FileNotFoundError(f"init_from {current}: no such checkpoint; run `searchlearn demo` (or `searchlearn "
                                "init`) first, point init_from at a checkpoint, or set init_from: null to "
                                "initialize a policy here (init.* settings)")
    policy = load_local(current, cfg.policy, cfg.seed)
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
    init_eval = run.stage("eval_init", lambda: evaluation(0))["metrics"]
    seen_targets = format_problems(task.problems("train", cfg.curve.train_problems, seed=CURVE_TRAIN_SEED + cfg.seed),
                                   policy.tokenizer, task.name, cfg.prompt)
    probe = CurveProbe(cfg.curve, policy, task, test, cfg.eval.max_new_tokens, cfg.seed, run.log, run.log.records,
                       seen_targets)
    if not any(p["round"] == 0 for p in curve_points(run.log.records())):
        probe.mark(0, 0, "init")
    rows = [{"round": 0, "learner": "init", "searcher": "", **headline(init_eval, ks), "train_generated_tokens": 0}]
    for r, phase in cfg.schedule():
        name = f"round{r}"
        learned = _round(r, phase, cfg, run, task, policy, probe)
        if checkpoint.exists(run.ckpt(name)):
            policy = load_local(run.ckpt(name), cfg.policy, cfg.seed, current=policy)
            probe.policy = policy
        metrics = run.stage(f"eval_{name}", lambda r=r: evaluation(r))["metrics"]
        rows.append({"round": r, "learner": phase.learner, "searcher": searcher_label(phase), **headline(metrics, ks),
                     "train_generated_tokens": learned["train_generated_tokens"],
                     "train_accuracy": learned.get("train_accuracy")})
    return Trained(policy, task, test, rows, n_params)


def stage_names(cfg: LoopConfig) -> list[str]:
    """The stages `train` runs, in order: initialization (unless init_from), then per round search, learn, eval."""
    names = ([] if cfg.init_from else ["init"]) + ["eval_init"]
    for r, phase in cfg.schedule():
        search = [f"round{r}_search"] if LEARNERS[phase.learner].kind == "search" else []
        names += search + [f"round{r}_learn", f"eval_round{r}"]
    return names


def summary(cfg: LoopConfig, run: Run, trained: Trained) -> dict:
    """metrics.json's content: init and final headline figures, one row per round, compute and time."""
    ks, results = list(cfg.eval.ks), run.results
    final = results[f"eval_round{cfg.rounds}"]["metrics"]
    out = {
        "init": headline(results["eval_init"]["metrics"], ks),
        "final": headline(final, ks),
        "rounds": trained.rows,
        "train_generated_tokens": sum(row["train_generated_tokens"] or 0 for row in trained.rows),
        "wall_seconds": run.seconds,
        "params": trained.n_params,
        "init_from": cfg.init_from,
        "eval_problems": len(trained.test),
        "init_detail": results["eval_init"]["metrics"],
        "final_detail": final,
        "curve": curve_points(run.log.records()),
    }
    if "init" in results:
        out["mean_trace_tokens"] = results["init"]["mean_trace_tokens"]
    return out


def finish(cfg: LoopConfig, run: Run, trained: Trained, metrics: dict, sections=()) -> None:
    """Write metrics.json, the final policy (OUT/policy) and report.html (with any extra `sections`)."""
    write_json(run.out / "metrics.json", metrics)
    trained.policy.model.save_pretrained(run.out / "policy")
    trained.policy.tokenizer.save(run.out / "policy")
    online = [f"round{r}" for r, p in cfg.schedule() if LEARNERS[p.learner].kind == "online"]
    build_report(run.out, metrics, run.results, list(cfg.eval.ks), run.log.records(), online, f"eval_round{cfg.rounds}",
                 sections)
    run.log.close()
    progress.say(f"wrote {run.out / 'report.html'}: greedy pass@1 {metrics['init']['pass@1']:.3f} → "
                 f"{metrics['final']['pass@1']:.3f} over {cfg.rounds} rounds in {metrics['wall_seconds']:.0f} s")


def run_loop(cfg: LoopConfig, out: str | Path = "runs/loop", resume: bool = False) -> dict:
    """Run (or, with `resume`, continue) the loop in `out`; returns metrics.json's content."""
    t_start = time.time()
    if cfg.init_from and Path(cfg.init_from).resolve().is_relative_to(Path(out).resolve()):
        raise ConfigError(f"the run directory {out} holds init_from {cfg.init_from}, which the run would overwrite; "
                          "choose another --out")
    run = Run(out, resume, cfg.report_to, to_dict(cfg))
    write_json(run.out / "config.json", to_dict(cfg))
    with workers(cfg.workers, cfg.ray_address):
        trained = train(cfg, run)
    metrics = {**summary(cfg, run, trained), "run_seconds": time.time() - t_start}
    finish(cfg, run, trained, metrics)
    return metrics


def _round(r: int, phase: PhaseConfig, cfg: LoopConfig, run: Run, task: Task, policy: TrainablePolicy,
           probe: CurveProbe) -> dict:
    """Round r's search stage (search learners) and learning stage, one after the other (a finished stage is read
    back). The learner trains `policy.model` in place and checkpoints it to OUT/ckpt/round{r}. Returns the learning
    stage: the learner's stats, train_generated_tokens and train_accuracy."""
    name, seed, spec = f"round{r}", round_seed(cfg.seed, r), LEARNERS[phase.learner]
    problems = format_problems(task.problems("train", phase.problems, seed=seed), policy.tokenizer, task.name,
                               cfg.prompt)
    rewards = round_rewards(phase.reward, task, phase.outcome)
    if run.done(f"{name}_learn") is None:
        progress.say(f"round {r}/{cfg.rounds}: {phase.learner} on {len(problems)} problems, {searcher_label(phase)}")
    searched = None
    if spec.kind == "search":
        searched = run.stage(f"{name}_search",
                             lambda: _search(r, phase, problems, policy, task, rewards, seed, run.log))
    return run.stage(f"{name}_learn", lambda: _learn(r, phase, run, policy, problems, rewards, seed, searched, probe))


def _learn(r: int, phase: PhaseConfig, run: Run, policy: TrainablePolicy, problems, rewards, seed: int,
           searched: dict | None, probe: CurveProbe) -> dict:
    """Train on the search stage's data (search learners) or on rollouts of the round's problems (online learners),
    with curve points along the way (`probe`)."""
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
    learner_cfg = spec.config(phase, seed)
    if probe.cfg.every:  # a curve point needs a logged record at its step
        learner_cfg = replace(learner_cfg, log_every=math.gcd(learner_cfg.log_every, probe.cfg.every))
    log = probe.watch(run.log, r, phase.learner, learner_cfg.steps, name)
    stats = spec.train(policy, data, learner_cfg, rewards, run.ckpt(name), log, name)
    if spec.kind == "online":
        per_step = {rec["step"]: rec for rec in run.log.records() if rec.get("phase") == name and "step" in rec}
        tokens = sum(rec.get("ledger/generated_tokens", 0) for rec in per_step.values())  # last record of each step
        solved = [rec["learn/solved"] for rec in per_step.values() if "learn/solved" in rec]
        accuracy = sum(solved) / len(solved) if solved else None
    return {"learn": stats, "train_generated_tokens": tokens, "train_accuracy": accuracy}


def _search(r: int, phase: PhaseConfig, problems, policy, task, rewards, seed: int, log) -> dict:
    """Training-time search on the round's problems, outcome labels, and the learner's data (kept in the stage)."""
    t0, searcher = time.time(), phase.searcher
    results = map_problems(SEARCHERS[searcher.name].search, problems, policy, task, rewards.process,
                           Budget(searcher.n, searcher.max_tokens), searcher.search_config(seed))
    label_outcomes(results, problems, rewards.outcome)
    data, extra = LEARNERS[phase.learner].prepare(results, problems, task, policy, phase, seed)
    trajectories = [t for res in results for t in res.trajectories]
    spent = {field: sum(getattr(res.ledger, field) for res in results)
             for field in ("generated_tokens", "prefilled_tokens", "reward_tokens")}
    stats = {"search/train_solve_rate": sum(any(t.correct for t in res.trajectories) for res in results) / len(results),
             "search/train_accuracy": sum(bool(t.correct) for t in trajectories) / max(1, len(trajectories)),
             "search/trajectories": len(trajectories), **extra,
             **{f"ledger/{k}": v for k, v in spent.items()}}
    log({"phase": f"round{r}_search", "round": r, **stats, "count/samples": len(trajectories),
         "count/generated_tokens": spent["generated_tokens"], "count/seconds": time.time() - t0})
    return {"stats": stats, "data": data}
