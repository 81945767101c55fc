"""Diverse verifier tree search (DVTS; Beeching et al. 2024, "Scaling test-time compute with open models").

Budget n is split into n // width independent subtrees per problem. Each subtree is a beam of width 1: at every depth
its one live path samples `width` next steps and keeps the best-scoring child (greedy in the scorer). Subtrees never
compare scores with each other, so a high-scoring region cannot crowd the others out: diversity that plain beam search
loses at large n. The answer is a vote over the subtrees' finished paths (weighted by their scores by default).
All subtrees of all problems are expanded in one engine call per depth (`grouped_beam`), each node tagged with its
subtree in `Node.group`.
"""

from __future__ import annotations

from collections.abc import Sequence

from searchlearn.search.beam import BeamConfig, grouped_beam
from searchlearn.search.budget import Budget
from searchlearn.types import Problem, SearchResult


def dvts(problems: Sequence[Problem], policy, task, scorer, budget: Budget,
         cfg: BeamConfig | None = None) -> list[SearchResult]:
    """DVTS with max(1, n // width) subtrees per problem, each keeping its single best child per depth."""
    cfg = cfg or BeamConfig()
    return grouped_beam(problems, policy, task, scorer, budget, cfg, groups=max(1, budget.n // cfg.width), keep=1)
