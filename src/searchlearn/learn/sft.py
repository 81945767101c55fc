"""Supervised fine-tuning: policy initialization on reasoning traces, and the learning half of expert iteration.

AdamW, linear warm-up then cosine decay, gradient clipping, loss on completion tokens only. The data order is a pure
function of (seed, step), and checkpoints carry optimizer and RNG state, so a killed run resumed from its last
checkpoint ends with exactly the weights an uninterrupted run would have.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from searchlearn import progress
from searchlearn.learn import checkpoint
from searchlearn.learn.losses import sft_loss

Example = tuple[list[int], list[int]]  # (prompt_ids, completion_ids); the completion ends with EOS


@dataclass
class SFTConfig:
    steps: int = 1000  # optimizer steps
    batch_size: int = 32  # sequences per step
    lr: float = 3e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr
    warmup_steps: int = 50  # linear warm-up from 0
    weight_decay: float = 0.01  # AdamW decay on matrices (not norms)
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas
    grad_clip: float = 1.0  # max global grad norm (0 = off)
    checkpoint_every: int = 200  # steps between checkpoints (0 = only at the end)
    log_every: int = 10  # steps between logged records
    seed: int = 0  # data-order seed
    length_buckets: int = 8  # batches sorted by length together, so each pads less (1 = off)

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("lr must be > 0 and min_lr_ratio in [0, 1]")
        if self.warmup_steps < 0 or self.checkpoint_every < 0 or self.log_every < 1 or self.length_buckets < 1:
            raise ValueError("warmup_steps, checkpoint_every must be >= 0; log_every, length_buckets >= 1")


def learning_rate(step: int, cfg: SFTConfig) -> float:
    """Linear warm-up to cfg.lr over warmup_steps, then cosine decay to min_lr_ratio·lr at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress_ = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def stream(n_examples: int, start: int, count: int, seed: int) -> list[int]:
    """Items start..start+count of the example stream: epochs of seeded permutations, read one after another."""
    out: list[int] = []
    while len(out) < count:
        epoch, offset = divmod(start + len(out), n_examples)
        perm = np.random.default_rng([seed, epoch]).permutation(n_examples)
        out.extend(perm[offset : offset + count - len(out)].tolist())
    return out


def batch_indices(n_examples: int, step: int, cfg: SFTConfig, lengths: Sequence[int] | None = None) -> np.ndarray:
    """Indices of step `step`'s batch: a pure function of (seed, step), which is what makes resume exact.

    With `lengths`, each group of `length_buckets` consecutive batches is drawn from the stream together, sorted by
    length and cut into batches taken in a seeded order: the same examples per group, far less padding.
    """
    bs, group = cfg.batch_size, cfg.length_buckets if lengths is not None else 1
    first, position = divmod(step, group)
    items = stream(n_examples, first * group * bs, group * bs, cfg.seed)
    if group == 1:
        return np.asarray(items)
    items.sort(key=lambda i: lengths[i])
    order = np.random.default_rng([cfg.seed, 1 << 20, first]).permutation(group)
    k = int(order[position])
    return np.asarray(items[k * bs : (k + 1) * bs])


def collate(examples: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (inputs, targets, loss_mask), each (B, T): targets are inputs shifted left by one."""
    seqs = [p + c for p, c in examples]
    width = max(len(s) for s in seqs) - 1
    inputs = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    targets = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, ((prompt, _), seq) in enumerate(zip(examples, seqs)):
        n = len(seq) - 1
        inputs[i, :n] = torch.tensor(seq[:-1])
        targets[i, :n] = torch.tensor(seq[1:])
        mask[i, len(prompt) - 1 : n] = True  # predict every completion token, EOS included
    return inputs, targets, mask


def make_optimizer(model: torch.nn.Module, cfg: SFTConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def train_sft(
    model: torch.nn.Module,
    examples: Sequence[Example],
    cfg: SFTConfig,
    pad_id: int,
    ckpt_dir: str | Path | None = None,
    tokenizer=None,
    log: Callable[[dict], None] = lambda record: None,
    stop_after: int | None = None,
    name: str = "sft",
) -> dict:
    """Train `model` in place for cfg.steps steps; resume from `ckpt_dir` when a checkpoint is there.

    `stop_after` ends the call after that many steps (a controlled stand-in for a kill, used by tests).
    Returns {"loss": last logged loss, "steps": steps done, "seconds": wall time of this call}.
    """
    if not examples:
        raise ValueError(f"{name}: no training examples")
    optimizer = make_optimizer(model, cfg)
    step = 0
    if ckpt_dir is not None and checkpoint.exists(ckpt_dir):
        step = _resume(model, optimizer, ckpt_dir)
        progress.say(f"{name}: resumed at step {step}/{cfg.steps} from {ckpt_dir}")
    model.train()
    lengths = [len(p) + len(c) for p, c in examples]
    t0, last, window = time.time(), {}, []
    with progress.bar(name, total=cfg.steps) as bar:
        bar.advance(step)
        while step < cfg.steps and (stop_after is None or step < stop_after):
            lr = learning_rate(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            inputs, targets, mask = collate([examples[i] for i in batch_indices(len(examples), step, cfg, lengths)], pad_id)
            logits = model(inputs)  # (B, T, V)
            loss, stats = sft_loss(logits, targets, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
            optimizer.step()
            step += 1
            window.append(stats["loss"])
            bar.advance()
            if step % cfg.log_every == 0 or step == cfg.steps:
                last = {"phase": name, "step": step, "learn/loss": sum(window) / len(window), "learn/lr": lr,
                        "learn/grad_norm": float(grad_norm), "learn/tokens": stats["tokens"]}
                window = []
                log(last)
            if ckpt_dir is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                checkpoint.save(ckpt_dir, model, tokenizer, optimizer, step)
    if ckpt_dir is not None and (step == cfg.steps or stop_after is not None):
        checkpoint.save(ckpt_dir, model, tokenizer, optimizer, step)
    model.eval()
    return {"loss": last.get("learn/loss"), "steps": step, "seconds": time.time() - t0}


def _resume(model: torch.nn.Module, optimizer: torch.optim.Optimizer, ckpt_dir: str | Path) -> int:
    meta, state = checkpoint.load_state(ckpt_dir)
    restored = type(model).from_pretrained(ckpt_dir)
    model.load_state_dict(restored.state_dict())
    if state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    checkpoint.set_rng_state(state["rng"])
    return int(meta["step"])
