"""Monte Carlo tree search over reasoning steps with PUCT (Silver et al. 2017, AlphaZero; sampled actions after
Hubert et al. 2021), batched across problems.

One simulation per problem per iteration:
  1. selection: from the root, while the node is expanded and not terminal, go to the child maximising
         Q(s, a) + c_puct · P(s, a) · sqrt(N(s)) / (1 + N(s, a)),        Q = value_sum / visits;
  2. expansion: the leaf samples k next steps (ONE engine call expands the selected leaf of every problem); identical
     steps merge, and P(s, a) is the share of the k samples that drew a (the empirical policy);
  3. evaluation: each new child is valued once — "scorer": the process scorer's score of its step (a PRM or value
     head; ONE scorer call for all problems), "rollout": a greedy rollout to the end, scored; a terminal child is
     valued by the task's verifier (`verify_terminals`, for training-time search) when asked, else by the scorer;
     children start with one visit holding that value;
  4. backup: the leaf and its ancestors gain one visit and the leaf's value v = Σ_a P(s, a) · v(a), the expected
     value of its children under the policy.
A selected terminal leaf spends nothing: its own value is backed up again. Dirichlet noise at the root,
P ← (1 − ε) P + ε · Dir(α), explores at training time (ε = 0 at test time). The answer follows the most-visited
child from the root; if that path has not finished, a greedy rollout completes it (its tokens are reserved).
The search of a problem stops at `simulations` or when its token allowance cannot cover another expansion.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from searchlearn.env.tool_policy import with_tools
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.budget import Accounts, Budget
from searchlearn.search.steps import (
    SearchConfig,
    add_children,
    completion_steps,
    prompt_of,
    score_paths,
    trajectory,
)
from searchlearn.types import Problem, SearchResult, SearchTree, Step, Trajectory, join_masks

EVALUATIONS = ("scorer", "rollout")


@dataclass
class MCTSConfig(SearchConfig):
    k: int = 4  # next steps sampled when a leaf is expanded
    c_puct: float = 1.0  # exploration weight of PUCT
    noise_fraction: float = 0.0  # ε of the root's Dirichlet noise (0.25 for training-time search, 0 at test time)
    dirichlet_alpha: float = 0.3  # α of the root's Dirichlet noise
    evaluation: str = "scorer"  # how a new child is valued: scorer | rollout
    simulations: int | None = None  # most simulations per problem; None = 8 × budget n
    final_rollout: bool = True  # complete an unfinished most-visited path greedily (its tokens are reserved)
    verify_terminals: bool = False  # value finished paths by the task's verifier (training-time search; an oracle)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k < 1 or self.c_puct < 0 or not 0 <= self.noise_fraction <= 1 or self.dirichlet_alpha <= 0:
            raise ValueError("need k >= 1, c_puct >= 0, noise_fraction in [0, 1], dirichlet_alpha > 0")
        if self.evaluation not in EVALUATIONS:
            raise ValueError(f"evaluation must be one of {', '.join(EVALUATIONS)}, got {self.evaluation!r}")
        if self.simulations is not None and self.simulations < 1:
            raise ValueError("simulations must be >= 1")


# -- the four phases on one tree ---------------------------------------------------------------------------------
def puct_select(tree: SearchTree, index: int, c_puct: float) -> int:
    """The child of `index` maximising Q + c_puct · P · sqrt(N(parent)) / (1 + N(child)) (ties: the first)."""
    parent = tree.nodes[index]
    sqrt_n = math.sqrt(parent.visits)
    best, best_score = -1, -math.inf
    for c in parent.children:
        child = tree.nodes[c]
        score = child.value + c_puct * child.prior_prob * sqrt_n / (1 + child.visits)
        if score > best_score:
            best, best_score = c, score
    return best


def select_leaf(tree: SearchTree, c_puct: float) -> int:
    """Descend by PUCT from the root to a node that is terminal or not yet expanded."""
    index = 0
    while tree.nodes[index].children and not tree.nodes[index].terminal:
        index = puct_select(tree, index, c_puct)
    return index


def backup(tree: SearchTree, index: int, value: float) -> None:
    """Add one visit and `value` to the node and each of its ancestors."""
    while index is not None:
        node = tree.nodes[index]
        node.visits += 1
        node.value_sum += value
        index = node.parent


def add_dirichlet(tree: SearchTree, index: int, alpha: float, fraction: float, rng: random.Random) -> None:
    """P ← (1 − ε) P + ε η, η ~ Dir(α), over the children of `index`."""
    children = tree.nodes[index].children
    eta = [rng.gammavariate(alpha, 1.0) for _ in children]
    total = sum(eta) or 1.0
    for c, e in zip(children, eta):
        tree.nodes[c].prior_prob = (1 - fraction) * tree.nodes[c].prior_prob + fraction * e / total


def most_visited_path(tree: SearchTree) -> int:
    """Follow the most-visited child (ties: higher value, then the first) from the root to a terminal or leaf."""
    index = 0
    while tree.nodes[index].children and not tree.nodes[index].terminal:
        index = max(tree.nodes[index].children, key=lambda c: (tree.nodes[c].visits, tree.nodes[c].value, -c))
    return index


# -- the batched search ------------------------------------------------------------------------------------------
def mcts(problems: Sequence[Problem], policy, task, scorer, budget: Budget, cfg: MCTSConfig | None = None
         ) -> list[SearchResult]:
    """PUCT search per problem, one engine call per iteration for every problem's selected leaf.

    `scorer` is a process scorer (`(problems, prefixes) -> scores per step`); with `cfg.verify_terminals` the task's
    verifier values terminal nodes. Returns the tree (visits and values on every node), every finished path and
    rollout as trajectories, and the visit-count answer.
    """
    cfg = cfg or MCTSConfig()
    terminal_reward = VerifierReward(task) if cfg.verify_terminals else None
    policy = with_tools(policy, task)  # a task with tools: calls inside a step are answered
    trees = [SearchTree(p.id) for p in problems]
    accounts = Accounts(len(problems), budget.cap(cfg.max_new_tokens))
    rng = random.Random(f"mcts-{cfg.seed}")
    sims_cap = cfg.simulations or 8 * budget.n
    rollout = cfg.evaluation == "rollout"
    expand_cost = cfg.k * cfg.step_tokens + (cfg.k * cfg.max_new_tokens if rollout else 0)
    reserve = cfg.max_new_tokens if cfg.final_rollout else 0
    sims = [0] * len(problems)
    rollouts: list[list[Trajectory]] = [[] for _ in problems]
    active = set(range(len(problems)))
    while active:
        leaves = []  # (problem, leaf) to expand this iteration
        for p in sorted(active):
            tree = trees[p]
            leaf = select_leaf(tree, cfg.c_puct)
            if sims[p] >= sims_cap or (not tree.nodes[leaf].terminal
                                       and accounts.remaining(p) < expand_cost + reserve):
                active.discard(p)
                continue
            sims[p] += 1
            if tree.nodes[leaf].terminal:
                backup(tree, leaf, tree.nodes[leaf].value)
            else:
                leaves.append((p, leaf))
        if not leaves:
            continue
        completions = accounts.generate(policy, [prompt_of(problems[p], trees[p], i) for p, i in leaves],
                                        [p for p, _ in leaves], cfg.step_params(cfg.k, accounts))
        owners, nodes = [], []
        for r, (p, leaf) in enumerate(leaves):
            children = add_children(trees[p], leaf, completions[r * cfg.k : (r + 1) * cfg.k], cfg)
            if leaf == 0 and cfg.noise_fraction > 0:
                add_dirichlet(trees[p], 0, cfg.dirichlet_alpha, cfg.noise_fraction, rng)
            owners += [p] * len(children)
            nodes += children
        values = _evaluate(problems, trees, owners, nodes, policy, scorer, terminal_reward, accounts, cfg, rollouts)
        for p, i, v in zip(owners, nodes, values):
            trees[p].nodes[i].visits, trees[p].nodes[i].value_sum = 1, v
        for p, leaf in leaves:
            kids = trees[p].nodes[leaf].children
            backup(trees[p], leaf, sum(trees[p].nodes[c].prior_prob * trees[p].nodes[c].value for c in kids))
    return _answers(problems, trees, policy, task, accounts, cfg, rollouts)


def _evaluate(problems, trees, owners, nodes, policy, scorer, terminal_reward, accounts, cfg, rollouts) -> list[float]:
    """The value of each new node: the scorer's last step score, a scored greedy rollout, or the terminal reward."""
    if not nodes:
        return []
    extra: list[list[Step]] = [[] for _ in nodes]
    outs: dict[int, object] = {}
    if cfg.evaluation == "rollout":
        todo = [j for j, (p, i) in enumerate(zip(owners, nodes)) if not trees[p].nodes[i].terminal]
        if todo:
            params = cfg.step_params(1, accounts, greedy=True, max_new_tokens=cfg.max_new_tokens)
            params.stop = ()
            prompts = [prompt_of(problems[owners[j]], trees[owners[j]], nodes[j]) for j in todo]
            decode = getattr(getattr(policy, "tokenizer", None), "decode", None)
            for j, c in zip(todo, accounts.generate(policy, prompts, [owners[j] for j in todo], params)):
                outs[j], extra[j] = c, completion_steps(c, cfg.delimiter, decode)
    scores = score_paths(scorer, problems, trees, owners, nodes, accounts, extra)
    values = [s[-1] if s else 0.0 for s in scores]
    texts = [trees[p].text(i) + "".join(s.text for s in e) for p, i, e in zip(owners, nodes, extra)]
    ends = [j for j, (p, i) in enumerate(zip(owners, nodes)) if trees[p].nodes[i].terminal or j in outs]
    if terminal_reward is not None and ends:
        outcomes = terminal_reward([problems[owners[j]] for j in ends], [texts[j] for j in ends])
        for j, o in zip(ends, outcomes):
            if o is not None:
                values[j] = float(o)
    for j, c in outs.items():
        p, i, tree = owners[j], nodes[j], trees[owners[j]]
        rollouts[p].append(Trajectory(tree.problem_id, problems[p].prompt, texts[j], tree.steps(i) + extra[j],
                                      tree.token_ids(i) + list(c.token_ids), tree.logprobs(i) + list(c.logprobs),
                                      values[j], mask=_mask(tree, i, c)))
    return values


def _mask(tree: SearchTree, index: int, completion) -> list[bool] | None:
    """The mask of the path to `index` followed by `completion` (None when the model wrote every token)."""
    return join_masks([(tree.mask(index), len(tree.token_ids(index))), (completion.mask, len(completion.token_ids))])


def _answers(problems, trees, policy, task, accounts: Accounts, cfg: MCTSConfig, rollouts) -> list[SearchResult]:
    """The visit-count answer per problem; unfinished most-visited paths are completed in one greedy engine call."""
    ends = [most_visited_path(tree) for tree in trees]
    todo = [p for p, (tree, i) in enumerate(zip(trees, ends))
            if cfg.final_rollout and not tree.nodes[i].terminal and accounts.afford(p, 1, cfg.max_new_tokens)]
    finals: dict[int, Trajectory] = {}
    if todo:
        params = cfg.step_params(1, accounts, greedy=True, max_new_tokens=cfg.max_new_tokens)
        params.stop = ()
        outs = accounts.generate(policy, [prompt_of(problems[p], trees[p], ends[p]) for p in todo], todo, params)
        decode = getattr(getattr(policy, "tokenizer", None), "decode", None)
        for p, c in zip(todo, outs):
            tree, i = trees[p], ends[p]
            finals[p] = Trajectory(tree.problem_id, problems[p].prompt, tree.text(i) + c.text,
                                   tree.steps(i) + completion_steps(c, cfg.delimiter, decode),
                                   tree.token_ids(i) + list(c.token_ids), tree.logprobs(i) + list(c.logprobs),
                                   tree.nodes[i].value, mask=_mask(tree, i, c))
    results = []
    for p, (problem, tree) in enumerate(zip(problems, trees)):
        done = [i for i in tree.terminals()]
        trajectories = [trajectory(problem, tree, i, tree.nodes[i].value) for i in done] + rollouts[p]
        if p in finals:
            trajectories.append(finals[p])
            answer = finals[p].completion
        else:
            answer = tree.text(ends[p]) if ends[p] != 0 else None
        results.append(SearchResult(problem.id, answer, trajectories, accounts.ledgers[p], tree))
    return results
