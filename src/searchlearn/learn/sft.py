"""Supervised fine-tuning: policy initialization on reasoning traces, and the learning half of expert iteration.

Loss on completion tokens only (`losses.sft_loss`); batches of similar length drawn from a seeded stream
(`data.batch_indices`). The optimizer, warm-up + cosine schedule, clipping, checkpoints and exact resume are the
shared `Trainer`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from searchlearn.learn.data import batch_indices
from searchlearn.learn.losses import sft_loss
from searchlearn.learn.trainer import TrainConfig, Trainer

Example = tuple[list[int], list[int]]  # (prompt_ids, completion_ids); the completion ends with EOS


@dataclass
class SFTConfig(TrainConfig):
    steps: int = 1000  # optimizer steps
    batch_size: int = 32  # sequences per step
    lr: float = 3e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr
    warmup_steps: int = 50  # linear warm-up from 0
    weight_decay: float = 0.01  # AdamW decay on matrices (not norms)
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas
    checkpoint_every: int = 200  # steps between checkpoints (0 = only at the end)
    log_every: int = 10  # steps between logged records
    length_buckets: int = 8  # batches sorted by length together, so each pads less (1 = off)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1 or self.length_buckets < 1:
            raise ValueError("batch_size and length_buckets must be >= 1")


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
    trainer = Trainer(model, cfg, name, ckpt_dir, tokenizer, log, stop_after)
    trainer.resume()
    lengths = [len(p) + len(c) for p, c in examples]

    def step_fn(step: int) -> dict:
        batch = [examples[i] for i in batch_indices(len(examples), step, cfg, lengths)]
        inputs, targets, mask = collate(batch, pad_id)
        loss, stats = sft_loss(model(inputs), targets, mask)  # logits (B, T, V)
        grad_norm = trainer.update(loss)
        return {"learn/loss": stats["loss"], "learn/grad_norm": grad_norm, "learn/tokens": stats["tokens"]}

    model.train()
    result = trainer.run(step_fn)
    return {"loss": result["last"].get("learn/loss"), "steps": result["steps"], "seconds": result["seconds"]}
