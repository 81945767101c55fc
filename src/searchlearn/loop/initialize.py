"""Policy initialization on a task with solver traces (Countdown): a Llama-style model from scratch, SFT on
solver-written reasoning traces.

The traces (tasks/countdown_traces.py) carry the roadmap's human-like reasoning behaviours: each step decomposes the
problem (combine two numbers), a dead end is abandoned for an alternative ("back | ..."), a final line checks itself
against the target ("... vs 46 yes|no"). SFT on them gives the policy those behaviours before search and RL.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from searchlearn import progress
from searchlearn.config import ConfigError
from searchlearn.contracts import Task
from searchlearn.learn.sft import SFTConfig, trace_example, train_sft
from searchlearn.loop.stages import Run
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.tokenizer import TaskTokenizer

INIT_MEMBERS = ("words", "max_number", "trace_segments")  # what policy initialization reads from a task


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
class InitConfig:
    model: ModelSize = field(default_factory=ModelSize)  # the model trained from scratch
    n_train: int = 12000  # training problems, one trace each (style: task.style)
    drills: float = 0.0  # share of the examples that are arithmetic drills (a task's `drill`; countdown_drills)
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(steps=1400, batch_size=32, lr=3e-3, compile=True))

    def __post_init__(self) -> None:
        if self.n_train < 1:
            raise ConfigError("init.n_train must be >= 1")
        if not 0.0 <= self.drills < 1.0:
            raise ConfigError(f"init.drills must be in [0, 1), got {self.drills}")


def task_tokenizer(task: Task, size: ModelSize) -> TaskTokenizer:
    """The task's words (and extra symbols) as single tokens, its numbers up to `task.max_number`."""
    return TaskTokenizer(task.words, max_number=task.max_number, digits=size.digit_tokens,
                         symbols=getattr(task, "symbols", ()))


def build_model(size: ModelSize, tokenizer: TaskTokenizer, seed: int) -> LlamaForCausalLM:
    """A freshly initialized model of `size` (weights seeded by `seed`), tied embeddings."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=size.hidden_size,
                         intermediate_size=size.intermediate_size, num_hidden_layers=size.num_hidden_layers,
                         num_attention_heads=size.num_attention_heads, num_key_value_heads=size.num_key_value_heads,
                         max_position_embeddings=size.max_position_embeddings, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id)
    return LlamaForCausalLM(config)


def init_examples(task: Task, tokenizer: TaskTokenizer, n_train: int, seed: int, max_len: int | None = None,
                  drills: float = 0.0) -> list:
    """Policy-initialization data: one solver-driven trace per training problem, as (prompt ids, completion ids,
    trained); traces longer than `max_len` tokens in all are dropped (the length cap of countdown_traces). With
    `drills` > 0, that share of the examples are the task's arithmetic drills instead (after the BOS alone)."""
    n_drills = round(drills * n_train)
    if n_drills and not hasattr(task, "drill"):
        raise ConfigError(f"init.drills: task {task.name!r} has no arithmetic drills")
    problems = task.problems("train", n_train - n_drills, seed=seed)
    rng = random.Random(seed)
    examples = [trace_example(tokenizer, p.prompt, task.trace_segments(p, rng)) for p in problems]
    examples += [trace_example(tokenizer, "", [(task.drill(rng), True)]) for _ in range(n_drills)]
    return [e for e in examples if max_len is None or len(e[0]) + len(e[1]) <= max_len]


def initialize(run: Run, task: Task, cfg: InitConfig, seed: int) -> Path:
    """The policy-initialization stage: SFT into OUT/ckpt/init (resumable); returns the checkpoint directory."""
    tokenizer = task_tokenizer(task, cfg.model)

    def stage() -> dict:
        model = build_model(cfg.model, tokenizer, seed)
        style = getattr(getattr(task, "config", None), "style", task.name)
        progress.say(f"policy initialization: {cfg.n_train} '{style}' traces, "
                     f"{model.num_parameters() / 1e6:.2f}M parameters, {cfg.sft.steps} SFT steps")
        examples = init_examples(task, tokenizer, cfg.n_train, seed, cfg.model.max_position_embeddings, cfg.drills)
        if len(examples) < cfg.n_train:
            progress.say(f"policy initialization: {cfg.n_train - len(examples)} traces longer than "
                         f"{cfg.model.max_position_embeddings} tokens left out")
        stats = train_sft(model, examples, cfg.sft, tokenizer.pad_id, run.ckpt("init"), tokenizer, run.log,
                          name="init")
        return {"sft": stats, "mean_trace_tokens": sum(len(e[1]) for e in examples) / len(examples)}

    run.stage("init", stage)
    return run.ckpt("init")
