"""Step-level beam search guided by a process scorer (Snell et al. 2024; Beeching et al. 2024, "search-and-learn").

With budget n and width M: keep k = n // M beams per problem. At each depth every live beam of every problem samples
M next steps in ONE engine call (the first depth samples k × M from the prompt, so every depth sees n candidates);
the scorer scores all new steps in ONE call (after `lookahead` greedy steps past each, when asked); each problem keeps
exactly its top-(k − finished) candidates by aggregated path score (equal scores: the policy's likelier step first).
Candidates that end (eos, cut, too long) among the kept are finished beams; the search of a problem stops when k
beams have finished or none is live. The answer is chosen among the finished beams (weighted vote by default).

`grouped_beam` is the same search over independent groups of beams per problem: beam search is one group of k, DVTS
is n // M groups of one (see dvts.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from searchlearn.env.tool_policy import with_tools
from searchlearn.reward.aggregate import AGGREGATES, aggregate
from searchlearn.search.budget import Accounts, Budget
from searchlearn.search.steps import (
    SELECT_RULES,
    SearchConfig,
    add_children,
    choose,
    lookahead,
    prompt_of,
    score_paths,
    trajectory,
)
from searchlearn.types import Problem, SearchResult, SearchTree


@dataclass
class BeamConfig(SearchConfig):
    width: int = 4  # M: next steps each live beam samples per depth; k = n // M beams are kept
    lookahead: int = 0  # greedy steps rolled out past each candidate before it is scored (not kept in the tree)
    aggregate: str = "last"  # how a path's step scores rank it: last | min | prod | mean
    select: str = "weighted"  # the answer among finished beams: weighted | max | majority
    merge: bool = True  # merge identical sibling steps into one candidate

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.width < 1 or self.lookahead < 0:
            raise ValueError("width must be >= 1 and lookahead >= 0")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")
        if self.select not in SELECT_RULES:
            raise ValueError(f"select must be one of {', '.join(SELECT_RULES)}, got {self.select!r}")


def beam_search(problems: Sequence[Problem], policy, task, scorer, budget: Budget,
                cfg: BeamConfig | None = None) -> list[SearchResult]:
    """Beam search with k = max(1, n // width) beams per problem, batched across problems."""
    cfg = cfg or BeamConfig()
    return grouped_beam(problems, policy, task, scorer, budget, cfg, groups=1, keep=max(1, budget.n // cfg.width))


def grouped_beam(problems: Sequence[Problem], policy, task, scorer, budget: Budget, cfg: BeamConfig,
                 groups: int, keep: int) -> list[SearchResult]:
    """`groups` independent beams of size `keep` per problem, all problems and groups expanded together.

    Per depth: admit live beams (best first, across a problem's groups) while the problem's token allowance covers
    width × step_tokens × (1 + lookahead) each; one engine call samples `width` steps for every admitted beam; one
    scorer call scores every new candidate; each group keeps its top-(keep − finished) candidates.
    """
    policy = with_tools(policy, task)  # a task with tools: calls inside a step are answered
    trees = [SearchTree(p.id) for p in problems]
    accounts = Accounts(len(problems), budget.cap(cfg.max_new_tokens))
    # live[p][g]: node indices of group g's live beams. The root starts as `keep` copies, so the first step gets
    # keep × width samples, as every later depth does (Beeching et al. start from N copies of the prompt).
    live = [[[0] * keep for _ in range(groups)] for _ in problems]
    finished = [[[] for _ in range(groups)] for _ in problems]  # finished[p][g]: its finished beams
    rank: list[dict[int, float]] = [{0: 0.0} for _ in problems]  # rank[p][node]: aggregated path score
    cost = cfg.width * cfg.step_tokens * (1 + cfg.lookahead)  # worst-case tokens of expanding one beam
    for _ in range(cfg.max_steps):
        requests = [(p, g, i) for p in range(len(problems)) for g, i in _admit(live[p], rank[p], accounts, p, cost)]
        if not requests:
            break
        completions = accounts.generate(policy, [prompt_of(problems[p], trees[p], i) for p, _, i in requests],
                                        [p for p, _, _ in requests], cfg.step_params(cfg.width, accounts))
        samples: dict[tuple[int, int, int], list] = {}  # (problem, group, beam) -> its samples (root copies pooled)
        for r, key in enumerate(requests):
            samples.setdefault(key, []).extend(completions[r * cfg.width : (r + 1) * cfg.width])
        pools: dict[tuple[int, int], list[int]] = {}  # (problem, group) -> new candidates
        for (p, g, i), chunk in samples.items():
            pools.setdefault((p, g), []).extend(add_children(trees[p], i, chunk, cfg, group=g, merge=cfg.merge))
        owners = [p for (p, _), pool in pools.items() for _ in pool]
        nodes = [i for pool in pools.values() for i in pool]
        extra = None
        if cfg.lookahead:
            extra = lookahead(problems, trees, owners, nodes, policy, accounts, cfg, cfg.lookahead)
        scores = score_paths(scorer, problems, trees, owners, nodes, accounts, extra)
        for p, i, s in zip(owners, nodes, scores):
            rank[p][i] = aggregate(s, cfg.aggregate)
            trees[p].nodes[i].visits, trees[p].nodes[i].value_sum = 1, rank[p][i]
        for (p, g), pool in pools.items():
            kept = top_k(pool, [rank[p][i] for i in pool], keep - len(finished[p][g]),
                         [_confidence(trees[p], i) for i in pool])
            finished[p][g] += [i for i in kept if trees[p].nodes[i].terminal]
            live[p][g] = [i for i in kept if not trees[p].nodes[i].terminal]
    return [_result(problem, task, trees[p], [i for f in finished[p] for i in f],
                    [i for beams in live[p] for i in beams if i != 0], rank[p], accounts.ledgers[p], cfg.select)
            for p, problem in enumerate(problems)]


def top_k(candidates: Sequence[int], scores: Sequence[float], k: int,
          tiebreak: Sequence[float] | None = None) -> list[int]:
    """The k highest-scoring candidates, best first; equal scores go by `tiebreak` (higher first), then position."""
    second = tiebreak if tiebreak is not None else [0.0] * len(candidates)
    order = sorted(range(len(candidates)), key=lambda j: (-scores[j], -second[j], j))
    return [candidates[j] for j in order[: max(0, k)]]


def _confidence(tree: SearchTree, index: int) -> float:
    """Mean token logprob of a node's step: among equally scored candidates the policy's likelier step goes first
    (a 0/1 scorer such as the gold labels ties often)."""
    step = tree.nodes[index].step
    return step.logprob / step.num_tokens if step.num_tokens else 0.0


def _admit(live: list[list[int]], rank: dict[int, float], accounts: Accounts, p: int, cost: int
           ) -> list[tuple[int, int]]:
    """(group, node) of the beams of problem p to expand this depth: best first, while its allowance covers them.
    A group none of whose beams is admitted keeps its live beams (unexpanded); one partly admitted drops the rest."""
    beams = sorted(((rank[i], g, i) for g, nodes in enumerate(live) for i in nodes), key=lambda b: (-b[0], b[1], b[2]))
    return [(g, i) for _, g, i in beams[: accounts.remaining(p) // cost]]


def _result(problem: Problem, task, tree: SearchTree, done: list[int], cut: list[int], rank: dict, ledger,
            rule: str) -> SearchResult:
    """Finished beams are the candidates; a problem that finished none answers from its best unfinished beam."""
    candidates = done or sorted(cut, key=lambda i: -rank[i])[:1]
    trajectories = [trajectory(problem, tree, i, rank[i]) for i in candidates]
    index = choose(problem, task, trajectories, rule)
    return SearchResult(problem.id, None if index is None else trajectories[index].completion, trajectories, ledger,
                        tree)
