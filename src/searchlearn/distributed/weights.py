"""Weights as plain arrays for Ray's object store, and a cheap test of whether a model's weights changed.

numpy arrays are read zero-copy from the store (one copy per node, shared by every worker on it); torch tensors
would be pickled and copied per reader. A dtype numpy lacks (bfloat16) travels as its raw bits (int16).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

_BITS = {torch.bfloat16: torch.int16}


def to_arrays(model: torch.nn.Module) -> dict[str, tuple[np.ndarray, str]]:
    """name -> (array, torch dtype name) of every entry of the model's state dict, on CPU."""
    out = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        out[name] = ((t.view(_BITS[t.dtype]) if t.dtype in _BITS else t).numpy(), str(t.dtype).removeprefix("torch."))
    return out


def from_arrays(arrays: dict[str, tuple[np.ndarray, str]]) -> dict[str, torch.Tensor]:
    """The state dict `to_arrays` came from (tensors view the arrays: `load_state_dict` makes the one copy)."""
    out = {}
    with warnings.catch_warnings():  # arrays from the object store are read-only; nothing writes through the view
        warnings.simplefilter("ignore", UserWarning)
        for name, (array, dtype) in arrays.items():
            t = torch.from_numpy(array)
            out[name] = t.view(getattr(torch, dtype)) if t.dtype != getattr(torch, dtype) else t
    return out
