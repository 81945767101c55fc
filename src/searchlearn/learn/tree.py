"""A tree of samples from the completions of one prompt: shared token prefixes merged into segments (a radix tree).

Completions sampled from one prompt, whether as independent chains or branched from each other's prefixes (tree
rollouts), share prefixes: the same tokens from the same state. Merged, they form a tree whose root is the prompt and
whose nodes are maximal runs of tokens shared by the same set of completions; each completion ends at a leaf of its
own (identical completions are sibling leaves with no tokens, so each still counts once in the values above them).
Node values and segment advantages are then pure functions of `parents` and the leaves' rewards (advantages.py:
`tree_values`, `treerl_advantages`, `treerpo_advantages`).

For training, each token of a completion belongs to one node, and a node's tokens are trained once, in the row of
the first completion that passes through it (`owner`): a segment shared by several leaves is not computed once per
leaf (tree_rollout.tree_advantages weighs it as its copies would be).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SampleTree:
    """parents (S,): segment 0 is the root (the prompt), parents[i] < i. leaf_of (R,): the leaf segment completion r
    ends at. node_of[r][t]: the segment token t of completion r belongs to. owner (S,): the completion whose row
    trains the segment's tokens (the first through it; −1 for the root). sizes (S,): each segment's token count."""

    parents: list[int]
    leaf_of: list[int]
    node_of: list[list[int]]
    owner: list[int]
    sizes: list[int]

    def rewards(self, outcomes: Sequence[float]) -> list[float | None]:
        """One reward slot per segment: completion r's outcome on its leaf, None on inner segments."""
        out: list[float | None] = [None] * len(self.parents)
        for r, leaf in enumerate(self.leaf_of):
            out[leaf] = float(outcomes[r])
        return out

    def trained(self, r: int) -> list[bool]:
        """Which tokens of completion r its row trains: those of the segments it owns."""
        return [self.owner[s] == r for s in self.node_of[r]]


def prefix_tree(sequences: Sequence[Sequence[int]]) -> SampleTree:
    """The radix tree of `sequences` (token ids of the completions of one prompt, in sampling order)."""
    # A token trie first: trie node 0 is the root; every sequence then steps into an end node of its own.
    trie_parent, first, children = [-1], [-1], {}
    paths = []
    for r, seq in enumerate(sequences):
        node, path = 0, []
        for token in [*seq, ("end", r)]:
            key = (node, token)
            if key not in children:
                children[key] = len(trie_parent)
                trie_parent.append(node)
                first.append(r)
            node = children[key]
            path.append(node)
        paths.append(path)
    fanout = [0] * len(trie_parent)
    for p in trie_parent[1:]:
        fanout[p] += 1
    # Then segments: a trie node continues its parent's segment when it is that parent's only child (and the parent
    # is not the root); otherwise it starts a segment. Trie nodes are numbered in creation order, so are segments.
    segment, parents, owner = [0], [-1], [-1]
    for n in range(1, len(trie_parent)):
        p = trie_parent[n]
        if p != 0 and fanout[p] == 1:
            segment.append(segment[p])
        else:
            segment.append(len(parents))
            parents.append(segment[p])
            owner.append(first[n])
    node_of = [[segment[n] for n in path[:-1]] for path in paths]  # the end node is not a token
    sizes = [0] * len(parents)
    for r, nodes in enumerate(node_of):
        for s in nodes:
            sizes[s] += owner[s] == r  # counted in the owner's row only
    return SampleTree(parents, [segment[path[-1]] for path in paths], node_of, owner, sizes)
