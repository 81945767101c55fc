"""Self-describing, atomic checkpoints: weights (safetensors) + config + optimizer + step + RNG state.

A checkpoint is a directory written under a temporary name, fsynced, then renamed into place, so a run killed at any
instant leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE = "trainer_state.pt"
META = "trainer_state.json"


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            with open(file, "rb") as f:
                os.fsync(f.fileno())


def save(path: str | Path, model, tokenizer=None, optimizer=None, step: int = 0, extra: dict | None = None) -> Path:
    """Write the checkpoint directory `path` atomically; returns it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save(tmp)
    torch.save({"optimizer": optimizer.state_dict() if optimizer else None, "rng": rng_state()}, tmp / STATE)
    (tmp / META).write_text(json.dumps({"step": step, **(extra or {})}, indent=1))
    _fsync_tree(tmp)
    old = path.with_name(path.name + ".old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def load_state(path: str | Path) -> tuple[dict, dict]:
    """(meta, state): meta has `step` and any extras; state has `optimizer` and `rng`."""
    path = Path(path)
    meta = json.loads((path / META).read_text())
    state = torch.load(path / STATE, weights_only=False)
    return meta, state


def exists(path: str | Path) -> bool:
    return (Path(path) / META).is_file()
