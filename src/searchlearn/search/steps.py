"""The step machinery every tree search shares: sample next steps, grow the tree, score new nodes, read answers out.

A node is one step: the text up to and including the step delimiter, sampled by one engine call with
`stop=(delimiter,)`. A sample that ends in eos with no text is an *end node* (empty step, terminal): its parent's path
is a finished completion. A step that ends in eos after some text, one cut at `step_tokens`, and a path that reaches
`max_new_tokens` tokens or `max_steps` steps are terminal too. Identical sibling samples merge into one node whose
`count` says how many of the parent's samples drew it; `prior_prob` = count / samples is the empirical policy
distribution over the sampled steps, the PUCT prior of sampled MCTS (Hubert et al. 2021, "Learning and Planning in
Complex Action Spaces": with proposal β = π the corrected prior β̂/β·π is β̂).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from searchlearn.reward.aggregate import (
    aggregate,
    majority_vote,
    max_reward,
    weighted_vote,
)
from searchlearn.search.budget import Accounts, generated_tokens
from searchlearn.types import (
    Completion,
    Problem,
    SamplingParams,
    SearchTree,
    Step,
    Trajectory,
)

SELECT_RULES = ("weighted", "max", "majority")


@dataclass
class SearchConfig:
    temperature: float = 1.0  # sampling temperature of next steps
    top_p: float = 1.0  # nucleus of next steps
    step_tokens: int = 64  # most tokens in one step (a step engine call's max_new_tokens; ≤ max_new_tokens)
    max_new_tokens: int = 128  # completion cap: a path with this many generated tokens ends
    max_steps: int = 40  # a path with this many steps ends
    delimiter: str = "\n"  # the step delimiter
    seed: int = 0  # seeds every engine call of the search (call c gets seed · 1_000_003 + c)

    def __post_init__(self) -> None:
        if self.step_tokens < 1 or self.max_new_tokens < 1 or self.max_steps < 1:
            raise ValueError("step_tokens, max_new_tokens and max_steps must be >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        if not self.delimiter:
            raise ValueError("the step delimiter must be a non-empty string")
        self.step_tokens = min(self.step_tokens, self.max_new_tokens)  # a step never outgrows the completion cap

    def step_params(self, n: int, accounts: Accounts, greedy: bool = False, max_new_tokens: int | None = None
                    ) -> SamplingParams:
        """Sampling parameters of the next engine call (seeded by the call's index: reproducible)."""
        return SamplingParams(n=n, temperature=0.0 if greedy else self.temperature, top_p=self.top_p,
                              max_new_tokens=max_new_tokens or self.step_tokens, stop=(self.delimiter,),
                              seed=self.seed * 1_000_003 + accounts.calls)


def prompt_of(problem: Problem, tree: SearchTree, index: int) -> str:
    """What the policy sees to extend node `index`: the problem's prompt and the steps so far (the engine
    re-tokenizes the text)."""
    return problem.prompt + tree.text(index)


def add_children(tree: SearchTree, parent: int, completions: Sequence[Completion], cfg: SearchConfig,
                 group: int = 0, merge: bool = True) -> list[int]:
    """Add one child per distinct sampled step under `parent` (merging identical texts when `merge`); return the new
    node indices in order of first appearance."""
    base_tokens = tree.num_tokens(parent)
    depth = len(tree.path(parent))
    by_text: dict[str, int] = {}
    new: list[int] = []
    for c in completions:
        text = c.text if c.finish_reason != "eos" or c.text.strip() else ""
        if merge and text in by_text:
            tree.nodes[by_text[text]].count += 1
            continue
        step = Step(text=text, num_tokens=generated_tokens(c), logprob=sum(c.logprobs))
        index = tree.add(parent, step, prior=step.logprob)
        node = tree.nodes[index]
        node.token_ids, node.logprobs = list(c.token_ids), list(c.logprobs)
        node.finish, node.group = c.finish_reason, group
        node.mask = list(c.mask) if c.mask is not None else None  # a step with a tool's answer (env/tool_policy.py)
        node.terminal = (c.finish_reason != "stop" or not text.endswith(cfg.delimiter)
                         or base_tokens + step.num_tokens >= cfg.max_new_tokens or depth + 1 >= cfg.max_steps)
        by_text[text] = index
        new.append(index)
    total = sum(tree.nodes[i].count for i in new)
    for i in new:
        tree.nodes[i].prior_prob = tree.nodes[i].count / total
    return new


def completion_steps(completion: Completion, delimiter: str = "\n", decode=None) -> list[Step]:
    """A completion split into steps. With `decode` (token id list -> text), each step carries its token count and
    summed logprob (what `ConfidenceScorer` reads); without it, text only."""
    if decode is None:
        pieces = completion.text.split(delimiter)
        return [Step(p + delimiter) for p in pieces[:-1]] + ([Step(pieces[-1])] if pieces[-1] else [])
    steps, text, count, logprob = [], "", 0, 0.0
    for token, lp in zip(completion.token_ids, completion.logprobs):
        piece = decode([token])
        text, count, logprob = text + piece, count + 1, logprob + lp
        if delimiter in piece:
            steps.append(Step(text, count, logprob))
            text, count, logprob = "", 0, 0.0
    if text:
        steps.append(Step(text, count, logprob))
    return steps


def record_scores(tree: SearchTree, index: int, scores: Sequence[float]) -> None:
    """Store the step scores a scorer gave the path to `index` on the path's (non-empty) steps."""
    for step, score in zip(tree.steps(index), scores):
        step.score = score


def lookahead(problems: Sequence[Problem], trees: Sequence[SearchTree], owners: Sequence[int], nodes: Sequence[int],
              policy, accounts: Accounts, cfg: SearchConfig, depth: int) -> list[list[Step]]:
    """`depth` greedy steps past each node (one batched engine call per step; nodes that ended get none); the steps
    are not added to the tree. A node's lookahead stops where its problem's allowance would not cover the call."""
    extra: list[list[Step]] = [[] for _ in nodes]
    live = [j for j, (p, i) in enumerate(zip(owners, nodes)) if not trees[p].nodes[i].terminal]
    for _ in range(depth):
        live = [j for j in live if accounts.afford(owners[j], 1, cfg.step_tokens)]
        if not live:
            break
        prompts = [prompt_of(problems[owners[j]], trees[owners[j]], nodes[j]) + "".join(s.text for s in extra[j])
                   for j in live]
        completions = accounts.generate(policy, prompts, [owners[j] for j in live],
                                        cfg.step_params(1, accounts, greedy=True))
        still = []
        for j, c in zip(live, completions):
            if c.text.strip():
                extra[j].append(Step(text=c.text, num_tokens=generated_tokens(c), logprob=sum(c.logprobs)))
            if c.finish_reason == "stop" and c.text.endswith(cfg.delimiter):
                still.append(j)
        live = still
    return extra


def score_paths(scorer, problems: Sequence[Problem], trees: Sequence[SearchTree], owners: Sequence[int],
                nodes: Sequence[int], accounts: Accounts, extra: Sequence[Sequence[Step]] | None = None
                ) -> list[list[float]]:
    """One scorer call for the paths to `nodes` (each followed by its lookahead steps, if any); the scores of each
    node's own path are recorded on its steps. Returns every path's step scores."""
    prefixes = [trees[p].steps(i) + list(extra[j] if extra else ()) for j, (p, i) in enumerate(zip(owners, nodes))]
    if not prefixes:
        return []
    scores = accounts.score(scorer, [problems[p] for p in owners], prefixes, owners)
    for p, i, s in zip(owners, nodes, scores):
        record_scores(trees[p], i, s[: len(trees[p].steps(i))])
    return scores


def path_value(tree: SearchTree, index: int, how: str = "last") -> float:
    """A path's value from the scores recorded on its steps (unscored steps are skipped)."""
    return aggregate([s.score for s in tree.steps(index) if s.score is not None], how)


def trajectory(problem: Problem, tree: SearchTree, index: int, reward: float | None) -> Trajectory:
    """The path to `index` as a finished (or cut) attempt."""
    return Trajectory(problem.id, problem.prompt, tree.text(index), [Step(s.text, s.num_tokens, s.logprob, s.score)
                      for s in tree.steps(index)], tree.token_ids(index), tree.logprobs(index), reward,
                      mask=tree.mask(index))


def choose(problem: Problem, task, trajectories: Sequence[Trajectory], rule: str = "weighted") -> int | None:
    """Index of the answer among `trajectories` by `rule`: "weighted" (vote over answer keys weighted by reward,
    Li et al. 2023), "max" (highest reward) or "majority" (self-consistency). Falls back to the highest reward when
    no trajectory has an answer."""
    if rule not in SELECT_RULES:
        raise ValueError(f"unknown selection rule {rule!r}; use one of {', '.join(SELECT_RULES)}")
    if not trajectories:
        return None
    rewards = [t.reward if t.reward is not None else 0.0 for t in trajectories]
    keys = [task.answer_key(problem, t.completion) for t in trajectories]
    if rule == "weighted":
        index = weighted_vote(keys, rewards)
    elif rule == "majority":
        index = majority_vote(keys)
    else:
        index = max_reward(rewards)
    return index if index is not None else max_reward(rewards)
