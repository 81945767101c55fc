"""Hugging Face checkpoints in (a directory or a GGUF file) and out (a directory transformers loads).

In: `load_policy(path)` reads a local checkpoint without touching the network.

- Llama, Qwen2 and Mistral (`model_type` llama | qwen2 | mistral) map onto the project's own `LlamaForCausalLM` and
  KV-cache engine — the fast path, a `LocalPolicy`. The parameter names are the same; the config is translated
  (`hf_to_native_config`): Qwen2's q/k/v biases become `attention_bias`, Mistral's sliding window is accepted when it
  covers the whole context (then it never masks anything) and refused otherwise. RoPE scaling of rope_type "linear"
  or "llama3" (Llama 3.1/3.2/3.3) is reproduced (rope.py); any other type (yarn, dynamic, longrope, ...) is refused
  with an error naming it and pointing at backend="transformers".
- Weights: `model.safetensors`, sharded safetensors (`model.safetensors.index.json`), or `pytorch_model.bin`
  (single or sharded), in any dtype; the policy runs in float32 unless `dtype` says otherwise.
- A `.gguf` file goes through transformers' GGUF reader (dequantized), then the same mapping.
- Any other causal LM, or `backend="transformers"`, gives a `TransformersPolicy` (same contract, transformers'
  generate underneath).

Out: `export_hf(policy_or_model, tokenizer, out_dir)` writes config.json, model.safetensors, generation_config.json and
the tokenizer files, so `AutoModelForCausalLM.from_pretrained(out_dir)` and `AutoTokenizer.from_pretrained(out_dir)`
load it and give the same logits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from searchlearn.policy.hf_tokenizer import TOKENIZER_FILES, HFTokenizer
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.policy.transformers_policy import TransformersPolicy
from searchlearn.policy.vllm_policy import VLLMOptions, VLLMPolicy, import_vllm
from searchlearn.policy.weights import load_state_dict, read_json, reading, weight_files

NATIVE_FAMILIES = ("llama", "qwen2", "mistral")  # model_types the project's own model covers
BACKENDS = ("auto", "native", "transformers", "vllm")


class UnsupportedCheckpoint(ValueError):
    """A Llama/Qwen2/Mistral checkpoint using a feature the project's model lacks (use backend="transformers")."""


# -- config -----------------------------------------------------------------------------------------------------
def hf_to_native_config(hf: dict) -> LlamaConfig:
    """Translate an HF config.json dict of the Llama/Qwen2/Mistral family into the project's `LlamaConfig`.

    Raises `UnsupportedCheckpoint` naming the feature when the project's model cannot reproduce the checkpoint.
    """
    model_type = hf.get("model_type")
    if model_type not in NATIVE_FAMILIES:
        raise UnsupportedCheckpoint(f"model_type {model_type!r} is not one of {NATIVE_FAMILIES}")
    d = {k: v for k, v in hf.items() if v is not None}
    if model_type == "qwen2":
        d["attention_bias"] = True  # Qwen2 always has q/k/v biases (and none on o_proj)
    window = hf.get("sliding_window")
    uses_window = model_type == "mistral" or hf.get("use_sliding_window", False)
    if uses_window and window is not None:
        limit = hf.get("max_position_embeddings", 0)
        if window < limit:
            raise UnsupportedCheckpoint(
                f"{model_type} sliding_window={window} is shorter than max_position_embeddings={limit}: the project's "
                "model attends to the whole context; load it with backend='transformers'")
    layer_types = hf.get("layer_types") or []
    if uses_window is False and any(t != "full_attention" for t in layer_types):
        raise UnsupportedCheckpoint(f"layer_types {sorted(set(layer_types))}: only full attention is supported")
    try:
        return LlamaConfig.from_dict(d)
    except (ValueError, TypeError) as e:  # unsupported activation, RoPE scaling type, inconsistent shapes
        raise UnsupportedCheckpoint(f"{model_type} checkpoint: {e}; load it with backend='transformers'") from e


def read_hf_config(directory: Path) -> dict:
    """config.json as transformers reads it (its defaults filled in, old RoPE keys normalised) for the families the
    project's model covers; the raw JSON otherwise."""
    raw = read_json(directory / "config.json")
    if raw.get("model_type") not in NATIVE_FAMILIES:
        return raw
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(directory), local_files_only=True).to_dict()


def native_model(config: LlamaConfig, state: dict[str, torch.Tensor], dtype: torch.dtype | None = torch.float32
                 ) -> LlamaForCausalLM:
    """The project's model holding `state` (HF parameter names); a non-zero o_proj bias is unsupported."""
    for key in [k for k in state if k.endswith("o_proj.bias")]:  # HF Llama's attention_bias also biases o_proj
        if state[key].any():
            raise UnsupportedCheckpoint(f"{key} is non-zero: o_proj biases are not supported")
    return LlamaForCausalLM.from_state_dict(config, state, dtype)


# -- loading ----------------------------------------------------------------------------------------------------
def load_tokenizer(directory: Path):
    """The checkpoint's tokenizer: ours (searchlearn_tokenizer.json) or any HF tokenizer in the directory."""
    if (directory / "searchlearn_tokenizer.json").is_file():
        return TaskTokenizer.load(directory)
    return HFTokenizer.load(directory)


def load_policy(path: str | Path, device: str = "cpu", dtype: torch.dtype | None = torch.float32,
                backend: str = "auto", max_batch: int = 256, vllm: VLLMOptions | None = None, seed: int = 0):
    """A Policy for a local checkpoint: a directory (config.json + weights + tokenizer) or a `.gguf` file.

    backend: "auto" (the project's engine for Llama/Qwen2/Mistral, transformers for anything else), "native"
    (the project's engine or an error), "transformers" (always the transformers-backed policy), "vllm" (vLLM
    samples, `vllm` its settings and `seed` its global seed; the "auto" policy learns: policy/vllm_policy.py).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "vllm":
        import_vllm()  # before loading anything: the error names the install command
        learner = load_policy(path, device, dtype, "auto", max_batch)
        if not Path(path).expanduser().is_dir():
            raise ValueError(f"{path}: the vllm backend loads a checkpoint directory, not a .gguf file")
        return VLLMPolicy.open(learner, Path(path).expanduser(), vllm, seed)
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model directory or .gguf file")
    if path.is_dir() and not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) != 1:
            raise FileNotFoundError(f"{path}: missing config.json — not a Hugging Face checkpoint directory"
                                    + (f" (it holds several .gguf files, pass one: {[g.name for g in ggufs]})"
                                       if ggufs else ""))
        path = ggufs[0]
    if path.is_file():
        if path.suffix != ".gguf":
            raise ValueError(f"{path}: a file that is not .gguf; pass a checkpoint directory or a .gguf file")
        return load_gguf(path, device, dtype, backend, max_batch)

    if (path / "searchlearn_tokenizer.json").is_file() and backend != "transformers":  # a searchlearn checkpoint
        read_json(path / "config.json")  # a one-line error for a malformed config
        with reading(path / "model.safetensors", "safetensors file"):
            model = LlamaForCausalLM.from_pretrained(path, dtype=dtype)
        return LocalPolicy(model, TaskTokenizer.load(path), device=device, max_batch=max_batch)
    hf_config = read_hf_config(path)
    tokenizer = load_tokenizer(path)
    model_type = hf_config.get("model_type")
    if backend == "transformers" or (backend == "auto" and model_type not in NATIVE_FAMILIES):
        return TransformersPolicy.load(path, tokenizer, device=device, dtype=dtype)
    config = hf_to_native_config(hf_config)
    model = native_model(config, load_state_dict(weight_files(path)), dtype)
    return LocalPolicy(model, tokenizer, device=device, max_batch=max_batch)


def load_gguf(file: Path, device: str = "cpu", dtype: torch.dtype | None = torch.float32, backend: str = "auto",
              max_batch: int = 256):
    """A GGUF file via transformers' GGUF support (needs the `gguf` package): dequantized, then mapped onto the
    project's model for Llama/Qwen2/Mistral. The tokenizer is the directory's own if it has one, else the GGUF's."""
    try:
        import gguf  # noqa: F401 — transformers needs it; fail here with the fix
    except ImportError as e:
        raise ImportError("loading a .gguf file needs the `gguf` package: pip install gguf") from e
    from transformers import AutoModelForCausalLM

    with reading(file, "GGUF file"):
        hf = AutoModelForCausalLM.from_pretrained(str(file.parent), gguf_file=file.name, dtype=dtype or torch.float32,
                                                  local_files_only=True)
    has_tokenizer = any((file.parent / f).is_file() for f in TOKENIZER_FILES)
    tokenizer = load_tokenizer(file.parent) if has_tokenizer else HFTokenizer.load(file.parent, gguf_file=file.name)
    hf_config = hf.config.to_dict()
    if backend == "transformers" or (backend == "auto" and hf_config.get("model_type") not in NATIVE_FAMILIES):
        return TransformersPolicy(hf, tokenizer, device=device)
    model = native_model(hf_to_native_config(hf_config), hf.state_dict(), dtype)
    return LocalPolicy(model, tokenizer, device=device, max_batch=max_batch)


# -- export -----------------------------------------------------------------------------------------------------
def _write_json(path: Path, data: dict) -> None:
    """Atomic JSON write: a temp file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(data, indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export_hf(policy_or_model, tokenizer=None, out_dir: str | Path = "hf_export") -> Path:
    """Write a Hugging Face checkpoint of a policy (LocalPolicy / TransformersPolicy) or a bare model.

    The project's model is saved as a transformers `LlamaForCausalLM` (a Qwen2 origin keeps its q/k/v biases through
    Llama's `attention_bias`, with zero o_proj biases); the special-token ids of config.json and
    generation_config.json come from the tokenizer (every eos id, so `generate` stops at the end of a chat turn).
    `tokenizer` defaults to the policy's. Returns `out_dir`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = getattr(policy_or_model, "model", policy_or_model)
    tokenizer = tokenizer if tokenizer is not None else getattr(policy_or_model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("export_hf needs a tokenizer (pass one, or a policy that has one)")
    eos_ids = list(getattr(tokenizer, "eos_ids", None) or ([tokenizer.eos_id] if tokenizer.eos_id is not None else []))
    special = {"bos_token_id": tokenizer.bos_id, "pad_token_id": tokenizer.pad_id,
               "eos_token_id": eos_ids[0] if len(eos_ids) == 1 else (eos_ids or None)}
    if isinstance(model, LlamaForCausalLM):
        model.save_pretrained(out)
        config = json.loads((out / "config.json").read_text())
        config.update(special)
        _write_json(out / "config.json", config)
    else:  # a transformers model (the fallback policy)
        model.save_pretrained(str(out))
    _write_json(out / "generation_config.json", {**{k: v for k, v in special.items() if v is not None},
                                                 "do_sample": False})
    tokenizer.save(out)
    return out
