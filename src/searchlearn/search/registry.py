"""The searchers by name: what `--strategies`, `eval --search`, the loop's `searcher.name` and the sweep choose from.

Every searcher has the one signature of `contracts.Searcher`,
`(problems, policy, task, scorer, budget, config) -> list[SearchResult]`, and its own config dataclass. A new one is a
file with that function and its config, plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from searchlearn.contracts import Searcher
from searchlearn.registry import Registry
from searchlearn.search.beam import BeamConfig, beam_search
from searchlearn.search.best_of_n import BestOfNConfig, best_of_n
from searchlearn.search.dvts import dvts
from searchlearn.search.mcts import MCTSConfig, mcts
from searchlearn.search.revision import RevisionConfig, revise


@dataclass(frozen=True)
class SearcherSpec:
    search: Searcher  # (problems, policy, task, scorer, budget, config) -> results
    config: type  # its config dataclass (a SearchConfig): the loop's `searcher.options` are its keys
    tree: bool = False  # its results carry search trees (step-level DPO needs them)
    nested: bool = False  # one run at budget N holds every smaller budget's run (the sweep samples once)
    training: dict = field(default_factory=dict)  # option defaults for training-time search (the loop)
    sweep: Callable[[int, Any], dict] = lambda n, sweep: {}  # (budget n, SweepConfig) -> its options in a sweep


def _beam_options(n: int, sweep) -> dict:
    return {"width": min(sweep.width, n), "aggregate": sweep.aggregate}


SEARCHERS: Registry[SearcherSpec] = Registry("searcher", {
    "bon": SearcherSpec(best_of_n, BestOfNConfig, nested=True),
    "beam": SearcherSpec(beam_search, BeamConfig, tree=True, sweep=_beam_options),
    "dvts": SearcherSpec(dvts, BeamConfig, tree=True, sweep=_beam_options),
    "mcts": SearcherSpec(mcts, MCTSConfig, tree=True, training={"verify_terminals": True},
                         sweep=lambda n, sweep: {"k": sweep.width}),
    "revision": SearcherSpec(revise, RevisionConfig, sweep=lambda n, sweep: {"sequential": min(sweep.sequential, n)}),
})
