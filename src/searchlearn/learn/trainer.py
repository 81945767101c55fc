"""The one training engine every learner uses: optimizer, schedule, step loop, clipping, progress, checkpoints.

SFT, expert iteration, DPO, the GRPO family, PPO and the reward-model heads each keep only what is their own — their
data, their loss call, their per-step statistics — in a `step_fn(step) -> stats` that calls `trainer.update(loss)`.
Everything else lives here, once:

  * AdamW with decay on matrices only; linear warm-up then cosine decay to `min_lr_ratio`·lr (`learning_rate`);
  * global gradient-norm clipping over every trained parameter;
  * a progress bar, and one logged record per `log_every` steps (each statistic averaged over those steps, except
    the `count/` counters, summed: samples drawn, tokens generated and trained, `count/seconds` of the steps);
  * atomic checkpoints every `checkpoint_every` steps and at the end: the weights, the optimizer, the RNG state, the
    step, the frozen reference (when there is one), auxiliary modules (a critic) and JSON `meta`;
  * exact resume: a killed run restarted on the same `ckpt_dir` ends with the weights an uninterrupted run would have,
    provided `step_fn` is a pure function of (config, step) and the restored state — which every learner's is.

This is also the one place where data parallelism goes: under a process group (distributed/launch.py) `update`
sums the gradients of every rank's share of the batch (distributed/ddp.py), rank 0 alone logs and checkpoints.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from searchlearn import progress
from searchlearn.distributed.ddp import rank_world, sum_gradients
from searchlearn.learn import checkpoint

REFERENCE_DIR = "reference"  # the frozen reference's weights, inside a checkpoint


@dataclass
class OptimConfig:
    """AdamW and its schedule: the part of every learner's config that says how weights move."""

    lr: float = 1e-5  # peak learning rate
    min_lr_ratio: float = 1.0  # cosine floor as a fraction of lr (1 = constant after warm-up)
    warmup_steps: int = 0  # linear warm-up from 0, in optimizer steps (RL: in RL steps)
    weight_decay: float = 0.0  # AdamW decay on matrices (not norms, not biases)
    betas: tuple[float, float] = (0.9, 0.99)  # AdamW betas
    grad_clip: float = 1.0  # max global grad norm (0 = off)

    def __post_init__(self) -> None:
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            raise ValueError("lr must be > 0, min_lr_ratio in [0, 1] and warmup_steps >= 0")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("grad_clip and weight_decay must be >= 0")


@dataclass
class TrainConfig(OptimConfig):
    """An optimizer plus the step loop around it: how long, how often to log and checkpoint, the seed."""

    steps: int = 100  # optimizer steps (RL: rollouts, each followed by its updates)
    checkpoint_every: int = 0  # steps between checkpoints (0 = only at the end)
    log_every: int = 1  # steps between logged records
    seed: int = 0  # seeds the data order (and, for RL, the problems and the sampling)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps < 0 or self.checkpoint_every < 0 or self.log_every < 1:
            raise ValueError("steps, checkpoint_every must be >= 0 and log_every >= 1")


def learning_rate(step: int, cfg: TrainConfig, peak: float | None = None) -> float:
    """Linear warm-up to `peak` (default cfg.lr) over warmup_steps, then cosine decay to min_lr_ratio·peak at
    cfg.steps (Loshchilov & Hutter 2017; constant when min_lr_ratio = 1)."""
    peak = cfg.lr if peak is None else peak
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    done = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return peak * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * done)))


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over `model`'s trainable parameters: weight decay on matrices, none on vectors (norms, biases)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


StepFn = Callable[[int], dict]  # step -> that step's statistics (floats), after calling trainer.update(loss)


class Trainer:
    """Trains `model` in place for cfg.steps steps of a learner's `step_fn`; see the module docstring.

    aux: extra trained modules (e.g. PPO's critic), each with its own peak learning rate (`aux_lr`, default cfg.lr),
    no weight decay; saved to NAME.safetensors in checkpoints (its `own_state()` when it has one: a critic that shares
    the policy's decoder saves only its head). `stop_after` ends `run` after that many steps, checkpointing first (a
    stand-in for a kill, used by tests).
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, name: str, ckpt_dir: str | Path | None = None,
                 tokenizer=None, log: Callable[[dict], None] = lambda record: None, stop_after: int | None = None,
                 aux: dict[str, nn.Module] | None = None, aux_lr: dict[str, float] | None = None):
        self.rank = rank_world()[0]
        if self.rank:  # records come from rank 0 (and so do checkpoints, `save`); every rank resumes
            log = lambda record: None  # noqa: E731
        self.model, self.cfg, self.name, self.tokenizer, self.log = model, cfg, name, tokenizer, log
        self.ckpt_dir = None if ckpt_dir is None else Path(ckpt_dir)
        self.stop_after = stop_after
        self.aux = dict(aux or {})
        self.optimizer = make_optimizer(model, cfg)
        self.params = list(model.parameters())
        for key, module in self.aux.items():
            own = _own_parameters(module)
            self.optimizer.add_param_group({"params": own, "lr": (aux_lr or {}).get(key, cfg.lr), "weight_decay": 0.0})
            self.params += own
        self.peaks = [group["lr"] for group in self.optimizer.param_groups]
        self.step = 0
        self.reference: nn.Module | None = None
        self.meta: dict = {}  # JSON-able extras written into every checkpoint (e.g. DPO's reference log-probs)
        self.last: dict = {}  # the last logged record

    # -- state ---------------------------------------------------------------------------------------------------
    def resume(self) -> dict | None:
        """Restore everything from `ckpt_dir` when a checkpoint is there; returns its meta (None: a fresh start)."""
        if self.ckpt_dir is None or not checkpoint.exists(self.ckpt_dir):
            return None
        meta, state = checkpoint.load_state(self.ckpt_dir)
        self.model.load_state_dict(type(self.model).from_pretrained(self.ckpt_dir).state_dict())
        for key, module in self.aux.items():
            result = module.load_state_dict(load_file(str(self.ckpt_dir / f"{key}.safetensors")), strict=False)
            if result.unexpected_keys:
                raise ValueError(f"{self.ckpt_dir}/{key}.safetensors: unexpected weights {result.unexpected_keys[:3]}")
        if state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        checkpoint.set_rng_state(state["rng"])
        if (self.ckpt_dir / REFERENCE_DIR).is_dir():
            self.reference = type(self.model).from_pretrained(self.ckpt_dir / REFERENCE_DIR)
        self.step = int(meta.pop("step"))
        self.meta = meta
        progress.say(f"{self.name}: resumed at step {self.step}/{self.cfg.steps} from {self.ckpt_dir}")
        return meta

    def freeze_reference(self, reference: nn.Module | None = None) -> nn.Module:
        """The frozen π_ref: the one restored from the checkpoint, else `reference`, else a copy of the model now.
        It is saved in every checkpoint, so a resumed run keeps the same reference."""
        if self.reference is None:
            self.reference = reference if reference is not None else copy.deepcopy(self.model)
        return self.reference.eval().requires_grad_(False)

    def save(self) -> None:
        if self.ckpt_dir is not None and self.rank == 0:
            checkpoint.save(self.ckpt_dir, _Bundle(self), self.tokenizer, self.optimizer, self.step, self.meta)

    # -- one update ------------------------------------------------------------------------------------------------
    def update(self, loss: torch.Tensor) -> float:
        """Backpropagate `loss`, clip the global gradient norm, step the optimizer; returns the norm before clipping."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sum_gradients(self.params)  # data parallel: every rank now holds the global batch's gradient
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip or float("inf"))
        self.optimizer.step()
        return float(norm)

    # -- the loop --------------------------------------------------------------------------------------------------
    def run(self, step_fn: StepFn) -> dict:
        """Steps from the current one to cfg.steps (or `stop_after`); returns {"steps", "seconds", "last"}."""
        cfg, t0, window = self.cfg, time.time(), []
        with progress.bar(self.name, total=cfg.steps) as bar:
            bar.skip(self.step)
            while self.step < cfg.steps and (self.stop_after is None or self.step < self.stop_after):
                lr = self._set_lr()
                t_step = time.time()
                stats = step_fn(self.step)
                stats.setdefault("count/seconds", time.time() - t_step)
                self.step += 1
                bar.advance()
                window.append(stats)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    self.last = {"phase": self.name, "step": self.step, **_mean(window), "learn/lr": lr}
                    self.log(self.last)
                    window = []
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save()
        if self.step == cfg.steps or self.stop_after is not None:
            self.save()
        self.model.eval()
        return {"steps": self.step, "seconds": time.time() - t0, "last": self.last}

    def _set_lr(self) -> float:
        for group, peak in zip(self.optimizer.param_groups, self.peaks):
            group["lr"] = learning_rate(self.step, self.cfg, peak)
        return self.optimizer.param_groups[0]["lr"]


COUNTERS = "count/"  # statistics that add up over steps (samples, tokens, seconds): a window's record holds the sum


def _mean(window: list[dict]) -> dict:
    """Each statistic's mean over the steps of a logging window (a non-number: its last value; a `count/` counter:
    its sum, so that the records of a run add up to its totals whatever `log_every` is)."""
    keys = dict.fromkeys(k for stats in window for k in stats)
    out = {}
    for key in keys:
        values = [s[key] for s in window if key in s]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and key.startswith(COUNTERS):
            out[key] = sum(values)
        else:
            out[key] = sum(values) / len(values) if numeric and len(values) > 1 else values[-1]
    return out


def _own_parameters(module: nn.Module) -> list[nn.Parameter]:
    return module.own_parameters() if hasattr(module, "own_parameters") else list(module.parameters())


class _Bundle:
    """What `checkpoint.save` writes as "the model": the policy, the frozen reference and the auxiliary modules."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def save_pretrained(self, directory: Path) -> None:
        t = self.trainer
        t.model.save_pretrained(directory)
        if t.reference is not None:
            t.reference.save_pretrained(Path(directory) / REFERENCE_DIR)
        for key, module in t.aux.items():
            state = module.own_state() if hasattr(module, "own_state") else module.state_dict()
            state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
            save_file(state, str(Path(directory) / f"{key}.safetensors"), metadata={"format": "pt"})
