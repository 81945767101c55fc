"""Tree rollouts: M chains per problem, then L levels of branching from points on them, merged into a tree of samples.

TreeRL's EPTree (Hou et al. 2025, arXiv 2506.11902, §3.1): sample M chains; then, L times, pick N points on the tree's
completions and sample T continuations from each, to the end. Branch points are step boundaries (the task's
delimiter, "\\n": a continuation restarts a step) or the most surprising tokens of the tree so far (−log π of the
sampled token, a one-sample estimate of the entropy TreeRL ranks by), where a continuation re-decides that token.
Each problem ends with G = M·(1 + L·N·T) completions, prompt-major as a chain rollout's, so everything downstream of
sampling (rewards, dynamic sampling, the batch) is unchanged; `prefix_tree` then merges them (learn/tree.py) and
`tree_advantages` spreads each segment's advantage over its tokens, each segment trained once.

Every continuation is one row of one batched engine call per level; its prompt is the problem's prompt plus the
prefix, so the prefill of prefixes is counted in the ledger like any other (the engine prefills equal prompts once).
A continuation may write what its prefix left of the chains' budget (`budgets`, engine.py), so every leaf is held to
the cap a chain is held to: a branch that ran on past it would be rewarded for answers no chain (and no evaluation)
could reach. For a task with tools the policy is a `ToolPolicy` (env/tool_policy.py): chains and continuations are
episodes whose tools' answers are masked (and count against the budget), and a branch never starts inside an answer.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

import torch

from searchlearn.env.tool_policy import ToolPolicy
from searchlearn.learn.advantages import tree_values, treerl_advantages, treerpo_advantages
from searchlearn.learn.tree import prefix_tree
from searchlearn.types import Completion, Problem, SamplingParams, SearchTree, Step

BRANCH_AT = ("step", "surprisal")
TREE_ADVANTAGES = {"treerl": treerl_advantages, "treerpo": treerpo_advantages}  # (parents, rewards) -> (S,)


@dataclass(frozen=True)
class TreeShape:
    roots: int  # M chains per problem
    levels: int  # L rounds of branching
    points: int  # N branch points per root chain's subtree per level
    children: int  # T continuations per branch point
    branch_at: str = "step"  # step | surprisal
    delimiter: str = "\n"  # the step delimiter of "step" branching

    def __post_init__(self) -> None:
        if min(self.roots, self.points, self.children) < 1 or self.levels < 0:
            raise ValueError("tree: roots, points, children >= 1 and levels >= 0")
        if self.branch_at not in BRANCH_AT:
            raise ValueError(f"branch_at must be one of {BRANCH_AT}, got {self.branch_at!r}")

    @property
    def leaves(self) -> int:
        """G: completions per problem."""
        return self.roots * (1 + self.levels * self.points * self.children)


def branch_points(completions: Sequence[Completion], k: int, shape: TreeShape, token_text: Callable[[int], str],
                  rng: random.Random, exclude: Collection[tuple[int, ...]] = ()) -> list[tuple[int, int]]:
    """k (completion, position) pairs to branch from: the continuation replaces token `position` onwards. Distinct
    prefixes first (drawn at random among step boundaries, or the k most surprising tokens), none of those in
    `exclude` (branched from at an earlier level) while others remain; with fewer than k, they repeat; with none (no
    boundary yet), position 0: a fresh chain."""
    seen: dict[tuple[int, ...], tuple[int, int]] = {}
    if shape.branch_at == "step":
        for i, c in enumerate(completions):
            for p in range(1, len(c.token_ids)):
                if token_text(c.token_ids[p - 1]).endswith(shape.delimiter) and (c.mask is None or c.mask[p]):
                    seen.setdefault(tuple(c.token_ids[:p]), (i, p))
        options = list(seen.values())
        rng.shuffle(options)
    else:  # the model's own tokens only: an environment's answer is not a decision
        ranked = sorted(((-lp, i, p) for i, c in enumerate(completions) for p, lp in enumerate(c.logprobs)
                         if c.mask is None or c.mask[p]), key=lambda x: -x[0])
        for _, i, p in ranked:
            seen.setdefault(tuple(completions[i].token_ids[:p]), (i, p))
        options = list(seen.values())
    fresh = [(i, p) for i, p in options if tuple(completions[i].token_ids[:p]) not in exclude]
    options = fresh or options
    if not options:
        return [(0, 0)] * k
    return [options[j % len(options)] for j in range(k)]


def open_turn(c: Completion, p: int, decode: Callable[[list[int]], str]) -> str:
    """The text of the turn that position p of episode c falls in, up to p: the model's tokens since the last
    environment answer before p ("" at a turn's start). A branch from p continues that turn, so the environment must
    read it (a tool call the branch point splits)."""
    q = p
    while q > 0 and (c.mask is None or c.mask[q - 1]):
        q -= 1
    return decode(c.token_ids[q:p])


def sample_trees(problems: Sequence[Problem], policy, params: SamplingParams, shape: TreeShape,
                 environment: Callable | None = None) -> list[list[Completion]]:
    """shape.leaves completions of each problem (a list per problem; root m's subtree is m's chain followed by its
    branches, subtrees in root order), by one engine call for the chains and one per level (per turn, with an
    `environment` factory: the task's tools answered inside them)."""
    if environment is not None:
        policy = ToolPolicy(policy, environment)
    prompt_ids = policy.encode_prompts([p.prompt for p in problems])
    chains = policy.generate_ids(prompt_ids, replace(params, n=shape.roots))
    trees = [[[chains[i * shape.roots + m]] for m in range(shape.roots)] for i in range(len(problems))]  # [i][m]
    text, decode = _token_text(policy.tokenizer), policy.tokenizer.decode
    used: dict[tuple[int, int], set[tuple[int, ...]]] = {}  # (problem, root) -> prefixes branched from so far
    for level in range(shape.levels):
        prefixes, where = [], []
        for i, roots in enumerate(trees):
            for m, subtree in enumerate(roots):
                rng = random.Random(f"{params.seed}-{problems[i].id}-{m}-{level}")  # by content: any shard
                taken = used.setdefault((i, m), set())
                for c, p in branch_points(subtree, shape.points, shape, text, rng, taken):
                    prefixes.append(subtree[c].token_ids[:p])
                    where.append((i, m, subtree[c], p))
                    taken.add(tuple(prefixes[-1]))
        seed = None if params.seed is None else params.seed * 7919 + level + 1
        extra = {} if environment is None else {"opened": [open_turn(parent, p, decode) for *_, parent, p in where]}
        out = policy.generate_ids([prompt_ids[i] + prefix for (i, *_), prefix in zip(where, prefixes)],
                                  replace(params, n=shape.children, seed=seed),
                                  budgets=[params.max_new_tokens - len(prefix) for prefix in prefixes], **extra)
        for j, (i, m, parent, p) in enumerate(where):
            for cont in out[j * shape.children : (j + 1) * shape.children]:
                mask = None if parent.mask is None and cont.mask is None else (
                    (parent.mask or [True] * len(parent.token_ids))[:p] + (cont.mask or [True] * len(cont.token_ids)))
                trees[i][m].append(Completion(i, parent.token_ids[:p] + cont.token_ids, "",
                                              parent.logprobs[:p] + cont.logprobs, cont.finish_reason, mask))
    out = []
    for i, roots in enumerate(trees):
        out.append([replace(c, prompt_index=i, text=policy.tokenizer.decode(c.token_ids)) for sub in roots for c in sub])
    return out


def tree_advantages(rollout, tree_fn: Callable) -> torch.Tensor:
    """(B, T−1) per-token advantages for a `learn.rollout.Rollout` of trees, in its batch's shifted frame (column
    len(prompt) − 1 + t scores action token t): each problem's completions merged into a tree (`prefix_tree`), each
    token given its segment's advantage `tree_fn(parents, rewards)` (e.g. `treerl_advantages`) times L(n), the
    leaves under the segment. The rollout's action masks are narrowed to the tokens each row trains: a segment once,
    in the row that owns it, weighing as its L(n) copies do when every leaf's sequence is trained (TreeRL's setting,
    whose 1/√L(n) scale assumes them): the same gradient at a fraction of the tokens."""
    G = rollout.group_size
    trees = [prefix_tree(rollout.action_ids[n * G : (n + 1) * G]) for n in range(len(rollout.problems))]
    observed = rollout.action_masks or [None] * len(rollout.action_ids)  # an environment's answers: never trained
    rollout.action_masks = [[t and (m is None or m[k]) for k, t in enumerate(tree.trained(g))]
                            for n, tree in enumerate(trees) for g, m in ((g, observed[n * G + g]) for g in range(G))]
    rollout._batch = None  # rebuilt with the narrowed masks
    mask = rollout.batch.action_mask
    advantages = torch.zeros(mask.shape)
    for n, tree in enumerate(trees):
        rewards = tree.rewards(rollout.rewards[n].tolist())
        segment_advantages = tree_fn(tree.parents, rewards) * tree_values(tree.parents, rewards)[1]  # (S,) A(n)·L(n)
        for g, nodes in enumerate(tree.node_of):
            r = n * G + g
            first = len(rollout.prompt_ids[r]) - 1
            advantages[r, first : first + len(nodes)] = segment_advantages[nodes]
    return advantages * mask


def training_tree(rollout, n: int, tree_fn: Callable, decode: Callable[[list[int]], str]) -> SearchTree:
    """Problem n's tree of samples as a SearchTree the report draws (report/tree_view.py): one node per segment, its
    text the segment's tokens, its score the segment's advantage, N the leaves under it and Q their mean outcome."""
    G = rollout.group_size
    rows = rollout.action_ids[n * G : (n + 1) * G]
    sample = prefix_tree(rows)
    rewards = sample.rewards(rollout.rewards[n].tolist())
    values, leaves = tree_values(sample.parents, rewards)
    advantages = tree_fn(sample.parents, rewards)
    tree = SearchTree(rollout.problems[n].id)
    children = {p for p in sample.parents[1:]}
    for s in range(1, len(sample.parents)):
        row = sample.owner[s]
        tokens = [t for t, node in zip(rows[row], sample.node_of[row]) if node == s]
        index = tree.add(sample.parents[s], Step(decode(tokens), len(tokens), score=float(advantages[s])))
        node = tree.nodes[index]
        node.visits, node.value_sum, node.terminal = int(leaves[s]), float(values[s] * leaves[s]), s not in children
    root = tree.nodes[0]
    root.visits, root.value_sum = int(leaves[0]), float(values[0] * leaves[0])
    return tree


def _token_text(tokenizer) -> Callable[[int], str]:
    cache: dict[int, str] = {}

    def text(t: int) -> str:
        if t not in cache:
            cache[t] = tokenizer.decode([t])
        return cache[t]

    return text
