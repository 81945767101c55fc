"""Shared fixtures: the CLI run as a user runs it, tiny models, and a tiny policy that writes short Countdown steps.

Tests mirror the package (unit/, parity/, smoke/); what more than one test file needs lives here.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys

import pytest
import torch

from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.search import scripted
from searchlearn.tasks.countdown import WORDS


class CLI:
    """`searchlearn ARGS...` as a user runs it: a fresh process, progress quiet, optionally on `threads` threads."""

    def __init__(self, threads: int | None = None):
        self.env = {**os.environ, "SEARCHLEARN_QUIET": "1"}
        if threads is not None:
            self.env["OMP_NUM_THREADS"] = str(threads)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "searchlearn.cli", *args]

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout)


def tiny_model(seed: int = 0, vocab: int = 24, **config) -> LlamaForCausalLM:
    """A seeded 2-layer, width-32 Llama (GQA 4:2) for learner tests."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**{"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 64,
                                           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                                           "max_position_embeddings": 64, **config}))


def min_content_width(table: str, px_per_char: float = 7.5, cell_px: int = 21) -> float:
    """The narrowest a browser can lay out an HTML table: per column its longest unbreakable word (at ~7.5 px a
    character of a 13-14 px font), plus padding and border."""
    widths: dict[int, int] = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        for j, cell in enumerate(re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)):
            words = html.unescape(re.sub(r"<[^>]+>", "", cell)).split() or [""]
            widths[j] = max(widths.get(j, 0), max(len(w) for w in words))
    return sum(w * px_per_char + cell_px for w in widths.values())


STEP_TOKENIZER = TaskTokenizer(WORDS, max_number=99)


def stepping_policy() -> LocalPolicy:
    """A random 2-layer model on Countdown's tokenizer that writes short steps (`search.scripted.stepping_policy`)."""
    return scripted.stepping_policy(STEP_TOKENIZER)


@pytest.fixture(scope="session")
def cli() -> CLI:
    """`cli("eval", "--model", DIR, ...)` -> CompletedProcess; `cli.argv(...)`, `cli.env` for a Popen."""
    return CLI()


@pytest.fixture(scope="session")
def cli1() -> CLI:
    """The CLI on one thread (for tests that load transformers models beside the project's)."""
    return CLI(threads=1)


@pytest.fixture(scope="session")
def make_tiny_model():
    """tiny_model(seed=0, vocab=24, **config) -> a fresh LlamaForCausalLM."""
    return tiny_model


@pytest.fixture(scope="session")
def make_stepping_policy():
    """stepping_policy() -> a fresh LocalPolicy writing short steps (see the function)."""
    return stepping_policy


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for the tests that use Ray in-process; shut down at the end of the session."""
    import ray

    mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a local test cluster that a `searchlearn --ray-address` process joins
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if mode is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = mode
