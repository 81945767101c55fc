"""Checkpoint files on disk: which weight files a directory holds, reading them, and one-line errors for bad ones.

A missing file is a `FileNotFoundError` naming it; an empty, truncated or mislabelled one (a corrupt safetensors or
GGUF file, a config.json that is not JSON) is a `CheckpointError` naming the file and what is wrong, never a raw
traceback from the library underneath. The CLI turns both into one line on stderr and exit status 2. And
`fingerprint`: whether a model's weights changed, which every weight sync (Ray workers, the vLLM engine) asks first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file

SAFE_INDEX, SAFE_SINGLE = "model.safetensors.index.json", "model.safetensors"
BIN_INDEX, BIN_SINGLE = "pytorch_model.bin.index.json", "pytorch_model.bin"


class CheckpointError(ValueError):
    """A checkpoint file that exists but cannot be read as what its name says."""


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Turn any failure of the library reading `path` into a CheckpointError: "PATH: not a readable WHAT (reason)"."""
    try:
        yield
    except (CheckpointError, FileNotFoundError, ImportError):
        raise
    except Exception as e:  # safetensors, torch, gguf and transformers each raise their own kinds
        empty = Path(path).is_file() and Path(path).stat().st_size == 0
        reason = "the file is empty" if empty else (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"{path}: not a readable {what} ({reason})") from e


def read_json(path: Path) -> dict:
    """A JSON object from `path` (config.json, an index), or a one-line error."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def weight_files(directory: Path) -> list[Path]:
    """The checkpoint's weight files, sharded or not; a clear error when none (or a listed shard) is missing."""
    for index_name in (SAFE_INDEX, BIN_INDEX):
        index = directory / index_name
        if index.is_file():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise CheckpointError(f"{index}: no weight_map")
            shards = sorted(set(weight_map.values()))
            missing = [s for s in shards if not (directory / s).is_file()]
            if missing:
                raise FileNotFoundError(f"{directory}: {index_name} lists shards that are missing: {missing}")
            return [directory / s for s in shards]
    for single in (SAFE_SINGLE, BIN_SINGLE):
        if (directory / single).is_file():
            return [directory / single]
    raise FileNotFoundError(f"{directory}: no model weights — looked for {SAFE_SINGLE}, {SAFE_INDEX}, {BIN_SINGLE}, "
                            f"{BIN_INDEX}")


def load_state_dict(files: list[Path], device: str = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of the weight files, merged (safetensors, or torch pickles loaded with weights_only)."""
    state: dict[str, torch.Tensor] = {}
    for f in files:
        if f.suffix == ".safetensors":
            with reading(f, "safetensors file"):
                state.update(load_file(str(f), device=str(device)))
        else:
            with reading(f, "PyTorch weights file"):
                state.update(torch.load(f, map_location=device, weights_only=True))
    return state


def fingerprint(model: torch.nn.Module) -> tuple:
    """Changes whenever a parameter is written in place (an optimizer step, load_state_dict) or replaced: every
    in-place op bumps a tensor's `_version` (the counter autograd checks), so no weights are read or hashed."""
    return (id(model),) + tuple((p.data_ptr(), p._version) for p in model.parameters())
