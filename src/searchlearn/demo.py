"""The main job: Countdown from scratch through the whole roadmap on a CPU.

data (solver traces with reasoning behaviours) → policy initialization (SFT) → evaluate → R rounds of expert
iteration (sample K → verify → SFT) → evaluate → report. Every stage writes its result atomically under
`out/stages/`, and SFT checkpoints under `out/ckpt/`, so `--resume` continues a killed run where it stopped.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from searchlearn import progress
from searchlearn.config import to_dict
from searchlearn.evaluate import evaluate, headline
from searchlearn.learn import checkpoint
from searchlearn.learn.expert_iteration import ExpertIterationConfig, collect
from searchlearn.learn.sft import SFTConfig, train_sft
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.report.build import build_report
from searchlearn.report.metrics import MetricsLog, read_json, write_json
from searchlearn.search.curves import plot_curves
from searchlearn.search.sweep import SweepConfig, sweep
from searchlearn.tasks.countdown import CountdownConfig, CountdownTask


@dataclass
class ModelSize:
    hidden_size: int = 128  # width d
    num_hidden_layers: int = 4  # decoder blocks
    num_attention_heads: int = 4  # query heads
    num_key_value_heads: int = 4  # key/value heads (GQA when fewer)
    intermediate_size: int = 384  # SwiGLU width
    max_position_embeddings: int = 384  # longest prompt + completion
    digit_tokens: bool = True  # one token per digit (held-out targets reuse seen tokens) instead of per number


@dataclass
class DataConfig:
    n_train: int = 12000  # training problems for policy initialization (one trace each)
    n_test: int = 200  # held-out problems (test targets never appear in training)
    n_sweep: int = 32  # held-out problems for the final policy's search sweep (0 = no sweep)


@dataclass
class EvalConfig:
    samples: int = 16  # N samples per held-out problem
    ks: tuple[int, ...] = (1, 4, 16)  # k of maj@k and pass@k
    temperature: float = 1.0  # sampling temperature for maj@k / pass@k
    max_new_tokens: int = 192  # completion cap

    def __post_init__(self) -> None:
        if any(k > self.samples or self.samples % k for k in self.ks):
            raise ValueError(f"every k in {self.ks} must divide samples={self.samples}")


@dataclass
class DemoConfig:
    seed: int = 0  # seeds the model init, the data and the sampling
    task: CountdownConfig = field(default_factory=lambda: CountdownConfig(style="search"))
    model: ModelSize = field(default_factory=ModelSize)
    data: DataConfig = field(default_factory=DataConfig)
    init: SFTConfig = field(default_factory=lambda: SFTConfig(steps=1200, batch_size=32, lr=3e-3))
    expert_iteration: ExpertIterationConfig = field(default_factory=lambda: ExpertIterationConfig(
        rounds=2, problems_per_round=1024, samples_per_problem=4, sft=SFTConfig(steps=200, lr=1e-3, warmup_steps=20)))
    eval: EvalConfig = field(default_factory=EvalConfig)
    sweep: SweepConfig = field(default_factory=lambda: SweepConfig(
        strategies=("bon", "beam", "dvts"), budgets=(4, 16), scorer="gold", max_new_tokens=192))


def quick(cfg: DemoConfig) -> DemoConfig:
    """The ≤60 s smoke profile: a smaller model, data and budget, every stage still run."""
    cfg.model = ModelSize(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          intermediate_size=192)
    cfg.data = DataConfig(n_train=1500, n_test=32)
    cfg.init = SFTConfig(steps=150, batch_size=32, lr=3e-3, warmup_steps=10, checkpoint_every=50)
    cfg.expert_iteration = ExpertIterationConfig(rounds=1, problems_per_round=64, samples_per_problem=4,
                                                 sft=SFTConfig(steps=30, lr=1e-3, warmup_steps=5))
    cfg.eval = EvalConfig(samples=4, ks=(1, 4), max_new_tokens=128)
    cfg.data.n_sweep = 8
    cfg.sweep = SweepConfig(strategies=("bon", "beam"), budgets=(2, 4), scorer="gold", max_new_tokens=128)
    return cfg


class Run:
    """Paths and stage bookkeeping of one demo run directory."""

    def __init__(self, out: str | Path, resume: bool):
        self.out = Path(out)
        if not resume:
            for sub in ("stages", "ckpt", "metrics.jsonl", "metrics.json", "report.html"):
                path = self.out / sub
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        (self.out / "stages").mkdir(parents=True, exist_ok=True)
        self.log = MetricsLog(self.out / "metrics.jsonl")

    def stage(self, name: str) -> Path:
        return self.out / "stages" / f"{name}.json"

    def done(self, name: str) -> dict | None:
        return read_json(self.stage(name)) if self.stage(name).exists() else None

    def ckpt(self, name: str) -> Path:
        return self.out / "ckpt" / name


def build_model(cfg: DemoConfig, tokenizer: TaskTokenizer) -> LlamaForCausalLM:
    torch.manual_seed(cfg.seed)
    m = cfg.model
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=m.hidden_size,
                         intermediate_size=m.intermediate_size, num_hidden_layers=m.num_hidden_layers,
                         num_attention_heads=m.num_attention_heads, num_key_value_heads=m.num_key_value_heads,
                         max_position_embeddings=m.max_position_embeddings, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id)
    return LlamaForCausalLM(config)


def init_examples(task: CountdownTask, tokenizer: TaskTokenizer, cfg: DemoConfig) -> list:
    """Policy-initialization data: one solver-driven trace per training problem, tokenized."""
    problems = task.problems("train", cfg.data.n_train, seed=cfg.seed)
    rng = random.Random(cfg.seed)
    traces = [task.trace(p, rng) for p in problems]
    prompts = tokenizer.encode_batch([p.prompt for p in problems])
    completions = tokenizer.encode_batch(traces)
    return [([tokenizer.bos_id] + p, c + [tokenizer.eos_id]) for p, c in zip(prompts, completions)]


def run_demo(cfg: DemoConfig, out: str | Path = "runs/demo", resume: bool = False) -> dict:
    run = Run(out, resume)
    write_json(run.out / "config.json", to_dict(cfg))
    task = CountdownTask(cfg.task)
    tokenizer = TaskTokenizer(task.words, max_number=cfg.task.max_intermediate, digits=cfg.model.digit_tokens)
    test = task.problems("test", cfg.data.n_test, seed=cfg.seed + 1)
    ev = cfg.eval

    def timed_stage(name: str, fn):
        result = run.done(name)
        if result is None:
            t0 = time.time()
            result = fn()
            result["seconds"] = time.time() - t0
            write_json(run.stage(name), result)
        return result

    def evaluation(policy: LocalPolicy, seed: int) -> dict:
        progress.say(f"evaluating on {len(test)} held-out problems (greedy + {ev.samples} samples each)")
        return evaluate(policy, task, test, n=ev.samples, ks=ev.ks, temperature=ev.temperature,
                        max_new_tokens=ev.max_new_tokens, seed=seed)

    # 1. policy initialization
    model = build_model(cfg, tokenizer)
    n_params = model.num_parameters()

    def initialize() -> dict:
        progress.say(f"policy initialization: {cfg.data.n_train} '{cfg.task.style}' traces, "
                     f"{n_params / 1e6:.2f}M parameters, {cfg.init.steps} SFT steps")
        examples = init_examples(task, tokenizer, cfg)
        stats = train_sft(model, examples, cfg.init, tokenizer.pad_id, run.ckpt("init"), tokenizer, run.log, name="init")
        return {"sft": stats, "mean_trace_tokens": sum(len(c) for _, c in examples) / len(examples)}

    stages = {"init": timed_stage("init", initialize)}
    model = LlamaForCausalLM.from_pretrained(run.ckpt("init"))
    policy = LocalPolicy(model, tokenizer)
    stages["eval_init"] = timed_stage("eval_init", lambda: evaluation(policy, cfg.seed))
    rows = [{"round": 0, **headline(stages["eval_init"]["metrics"], ev.ks)}]

    # 2. expert iteration rounds
    ei = cfg.expert_iteration
    for r in range(1, ei.rounds + 1):
        def one_round(r=r) -> dict:
            problems = task.problems("train", ei.problems_per_round, seed=cfg.seed * 1000 + r)
            progress.say(f"round {r}/{ei.rounds}: sampling {ei.samples_per_problem} per {len(problems)} problems")
            examples, stats = collect(policy, task, problems, ei, seed=cfg.seed * 1000 + r)
            sft_cfg = SFTConfig(**{**to_dict(ei.sft), "seed": cfg.seed * 1000 + r})
            result = train_sft(policy.model, examples, sft_cfg, tokenizer.pad_id, run.ckpt(f"round{r}"), tokenizer,
                               run.log, name=f"round{r}") if examples else {"steps": 0}
            run.log({"phase": f"round{r}", "round": r, **stats})
            return {"collect": stats, "sft": result}

        stages[f"round{r}"] = timed_stage(f"round{r}", one_round)
        if checkpoint.exists(run.ckpt(f"round{r}")):
            policy = LocalPolicy(LlamaForCausalLM.from_pretrained(run.ckpt(f"round{r}")), tokenizer)
        stages[f"eval_round{r}"] = timed_stage(f"eval_round{r}", lambda r=r: evaluation(policy, cfg.seed))
        m = stages[f"eval_round{r}"]["metrics"]
        rows.append({"round": r, "learner": "expert_iteration", "searcher": f"best_of_{ei.samples_per_problem}",
                     **headline(m, ev.ks),
                     "train_generated_tokens": stages[f"round{r}"]["collect"]["ledger/generated_tokens"]})
        run.log({"phase": "eval", "round": r, **{f"search/{k}": v for k, v in headline(m, ev.ks).items()}})

    final = stages[f"eval_round{ei.rounds}"] if ei.rounds else stages["eval_init"]

    # 3. test-time search: strategies × budgets on held-out problems, the final policy
    if cfg.data.n_sweep:
        def search_sweep() -> dict:
            progress.say(f"search sweep: {', '.join(cfg.sweep.strategies)} × budgets {cfg.sweep.budgets} "
                         f"on {cfg.data.n_sweep} held-out problems ({cfg.sweep.scorer} scorer)")
            return {"rows": sweep(policy, task, test[: cfg.data.n_sweep], cfg.sweep)}

        stages["sweep"] = timed_stage("sweep", search_sweep)
        write_json(run.out / "search_curves.json", stages["sweep"]["rows"])
        plot_curves(stages["sweep"]["rows"], run.out / "search_curves.png", "Test-time search on the final policy")
    metrics = {
        "init": headline(stages["eval_init"]["metrics"], ev.ks),
        "final": headline(final["metrics"], ev.ks),
        "rounds": rows,
        "wall_seconds": sum(s["seconds"] for s in stages.values()),
        "params": n_params,
        "init_detail": stages["eval_init"]["metrics"],
        "final_detail": final["metrics"],
        "mean_trace_tokens": stages["init"]["mean_trace_tokens"],
    }
    write_json(run.out / "metrics.json", metrics)
    policy.model.save_pretrained(run.out / "policy")
    tokenizer.save(run.out / "policy")
    build_report(run.out, metrics, stages, list(ev.ks), run.log.records())
    progress.say(f"wrote {run.out / 'report.html'}: greedy pass@1 {metrics['init']['pass@1']:.3f} → "
                 f"{metrics['final']['pass@1']:.3f} in {metrics['wall_seconds']:.0f} s")
    return metrics
