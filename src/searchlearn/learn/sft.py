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

from searchlearn import progress
from searchlearn.distributed.ddp import all_sum, my_rows, rank_world
from searchlearn.distributed.shard import learner_ranks
from searchlearn.distributed.weights import to_arrays
from searchlearn.learn.data import batch_indices
from searchlearn.learn.losses import sft_loss
from searchlearn.learn.trainer import TrainConfig, Trainer
from searchlearn.policy.policy import encode_prompts

Example = tuple[list[int], list[int]]  # (prompt_ids, completion_ids); the completion ends with EOS
# or (prompt_ids, completion_ids, trained): trained[i] False leaves completion token i out of the loss


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
    compile: bool = False  # torch.compile the forward pass (1.4x train tokens/s on CPU: benchmarks/sft_speed.py)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1 or self.length_buckets < 1:
            raise ValueError("batch_size and length_buckets must be >= 1")


def trace_example(tokenizer, prompt: str, segments: Sequence[tuple[str, bool]]) -> Example:
    """(prompt ids, completion ids + EOS, trained) of a solver trace given as (text, trained) segments (a task's
    `trace_segments`; pieces end at number and word boundaries, so encoding them apart gives the ids of the whole)."""
    completion, trained = [], []
    for text, keep in segments:
        ids = tokenizer.encode(text)
        completion += ids
        trained += [keep] * len(ids)
    return encode_prompts(tokenizer, [prompt])[0], completion + [tokenizer.eos_id], trained + [True]


def collate(examples: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (inputs, targets, loss_mask), each (B, T): targets are inputs shifted left by one."""
    seqs = [e[0] + e[1] for e in examples]
    width = max(len(s) for s in seqs) - 1
    inputs = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    targets = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, (example, seq) in enumerate(zip(examples, seqs)):
        n, start = len(seq) - 1, len(example[0]) - 1
        inputs[i, :n] = torch.tensor(seq[:-1])
        targets[i, :n] = torch.tensor(seq[1:])
        mask[i, start:n] = True  # predict every completion token, EOS included
        if len(example) == 3:
            mask[i, start:n] &= torch.tensor(example[2], dtype=torch.bool)
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

    `stop_after` ends the call after that many steps (a controlled stand-in for a kill, used by tests). With a worker
    pool of N > 1 active (`--workers N`), the steps run data-parallel on N ranks (`train_sft_parallel`).
    Returns {"loss": last logged loss, "steps": steps done, "seconds": wall time of this call}.
    """
    if (world := learner_ranks()) > 1:
        return train_sft_parallel(world, model, examples, cfg, pad_id, ckpt_dir, tokenizer, log,
                                  stop_after, name)
    if not examples:
        raise ValueError(f"{name}: no training examples")
    if cfg.batch_size < rank_world()[1]:
        raise ValueError(f"{name}: batch_size {cfg.batch_size} is smaller than the {rank_world()[1]} data-parallel "
                         "ranks")
    trainer = Trainer(model, cfg, name, ckpt_dir, tokenizer, log, stop_after)
    trainer.resume()
    lengths = [len(e[0]) + len(e[1]) for e in examples]
    forward = torch.compile(model, dynamic=True) if cfg.compile else model  # shares model's parameters
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic or cfg.compile)  # compiled kernels, reproducible: resume exactly

    def step_fn(step: int) -> dict:
        batch = [examples[i] for i in batch_indices(len(examples), step, cfg, lengths)]
        inputs, targets, mask = collate(batch[my_rows(len(batch))], pad_id)  # this rank's rows (all, alone)
        tokens = all_sum(mask.sum().item())  # the global batch's completion tokens
        loss, _ = sft_loss(forward(inputs), targets, mask, tokens)  # logits (B, T, V)
        grad_norm = trainer.update(loss)
        return {"learn/loss": all_sum(loss.item()), "learn/grad_norm": grad_norm, "learn/tokens": int(tokens),
                "count/train_tokens": int(tokens)}

    model.train()
    try:
        result = trainer.run(step_fn)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    return {"loss": result["last"].get("learn/loss"), "steps": result["steps"], "seconds": result["seconds"]}


def train_sft_parallel(world: int, model: torch.nn.Module, examples: Sequence[Example], cfg: SFTConfig, pad_id: int,
                       ckpt_dir: str | Path | None = None, tokenizer=None,
                       log: Callable[[dict], None] = lambda record: None, stop_after: int | None = None,
                       name: str = "sft") -> dict:
    """`train_sft` on `world` data-parallel ranks placed by Ray (distributed/launch.py): each rank trains a copy of
    `model` on its rows of every batch, gradients summed; rank 0 checkpoints to `ckpt_dir` (a path every rank can
    read: resume) and sends back its weights, loaded into `model`, and its records, replayed into `log`."""
    from searchlearn.distributed.launch import adopt, data_parallel  # Ray is imported only when it is used

    progress.say(f"{name}: {cfg.steps} steps data-parallel on {world} ranks")
    return adopt(model, data_parallel(_sft_rank, world, model, list(examples), cfg, pad_id, ckpt_dir, tokenizer,
                                      stop_after, name), log)


def _sft_rank(model, examples, cfg, pad_id, ckpt_dir, tokenizer, stop_after, name):
    """One rank of `train_sft_parallel`: (stats, its records, its weights as arrays from rank 0 only)."""
    records: list[dict] = []
    stats = train_sft(model, examples, cfg, pad_id, ckpt_dir, tokenizer, records.append, stop_after, name)
    return stats, records, to_arrays(model) if rank_world()[0] == 0 else None
