"""Multi-turn rollouts: many environments step together, one engine call per turn.

Each episode's context is token ids that only grow: the prompt, then each turn's sampled tokens (mask 1), then the
observation the environment answered with, encoded on its own and appended as ids (mask 0), never re-tokenized with
what came before. The mask is what every learner multiplies its loss by, so no loss trains on environment text.

An episode ends when the environment says done (its reward: the sum of the steps' rewards), after `max_turns` model
turns, or at the token budget `max_tokens` (prompt excluded): a turn is cut at the budget, and an observation that
would reach it (leaving the model no token to answer with) ends the episode instead of being appended (TRL's rule) —
both with finish "budget" and reward 0.
A turn ends at the environment's stop strings (a tool call's end), at EOS, or at `max_new_tokens`.

Sampling: `params.n` episodes per problem, problem-major. Each turn is one `generate_ids` call over the distinct
contexts, with n equal to the most episodes sharing one context (the first turn: n per problem), so equal contexts
draw independent samples (the engine's per-row streams) and the same seed gives the same episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from searchlearn.contracts import Environment
from searchlearn.types import Completion, Problem, SamplingParams

FINISHES = ("done", "max_turns", "budget")


@dataclass(frozen=True)
class EpisodeLimits:
    max_turns: int = 64  # model turns per episode (a tool call is one turn)
    max_tokens: int = 512  # model + observation tokens after the prompt


@dataclass
class Episode:
    problem_index: int
    prompt_ids: list[int]
    token_ids: list[int] = field(default_factory=list)  # everything after the prompt: turns and observations
    mask: list[bool] = field(default_factory=list)  # per token: True = sampled by the model (trained), False = observed
    logprobs: list[float] = field(default_factory=list)  # per token: log π at sampling (0.0 on observations)
    text: str = ""  # turns and observations as the environment saw them
    reward: float = 0.0
    turns: int = 0
    budget: int = 512  # tokens this episode may hold after its prompt (EpisodeLimits.max_tokens, or less)
    opened: str = ""  # the text of a turn its context left open (a branch from inside a turn), for the first step
    finish: str = ""  # one of FINISHES
    eos: bool = False  # the last turn ended with EOS (an action the learners train, like a single-turn completion's)
    info: list[dict] = field(default_factory=list)  # each step's info

    @property
    def model_tokens(self) -> int:
        return sum(self.mask)


def run_episodes(policy, problems: Sequence[Problem], make_env: Callable[[], Environment], params: SamplingParams,
                 limits: EpisodeLimits = EpisodeLimits(), contexts: Sequence[list[int]] | None = None,
                 inline: bool = True, budgets: Sequence[int] | None = None, opened: Sequence[str] | None = None
                 ) -> list[Episode]:
    """`params.n` episodes per problem (module docstring), problem-major. `contexts`: each problem's starting ids
    (an episode continued from a prefix, e.g. a tree rollout's branch) instead of its encoded reset text; `budgets`:
    each problem's own token budget, at most `limits.max_tokens` (a branch's prefix spent the rest); `opened`: the
    text of the turn each context leaves open (a branch from inside a turn: the environment reads it before the first
    turn's own text, so a tool call split by the branch point is still the whole call). `inline`:
    one engine call for everything where the policy can answer stops inline (`_run_inline`); False forces one call
    per turn (a benchmark's peer)."""
    envs = [make_env() for _ in problems for _ in range(params.n)]
    first = [env.reset(problems[i // params.n]) for i, env in enumerate(envs)]
    starts = policy.encode_prompts(first) if contexts is None else [list(contexts[i // params.n]) for i in
                                                                     range(len(envs))]
    budget = [min(limits.max_tokens, budgets[i // params.n]) if budgets else limits.max_tokens
              for i in range(len(envs))]
    episodes = [Episode(i // params.n, ids, budget=b, opened=opened[i // params.n] if opened else "")
                for i, (ids, b) in enumerate(zip(starts, budget))]
    stop = tuple(dict.fromkeys((*params.stop, *getattr(envs[0], "stop", ())))) if envs else ()
    batched = envs and getattr(envs[0], "batched", False)  # steps a turn at a time, its work prefetched in one batch
    if inline and not batched and getattr(policy, "inline_tools", False) and envs:
        return _run_inline(policy, episodes, envs, replace(params, stop=stop), limits)
    active = list(range(len(episodes)))
    for turn in range(limits.max_turns):
        if not active:
            break
        contexts: dict[tuple[int, ...], list[int]] = {}  # distinct context -> its episodes
        for e in active:
            contexts.setdefault(tuple(episodes[e].prompt_ids + episodes[e].token_ids), []).append(e)
        n = max(map(len, contexts.values()))
        budgets = [max(episodes[e].budget - len(episodes[e].token_ids) for e in members)  # each context's room
                   for members in contexts.values()]
        turn_params = replace(params, n=n, stop=stop, max_new_tokens=min(params.max_new_tokens, max(budgets)),
                              seed=None if params.seed is None else params.seed + 7919 * turn)
        completions = policy.generate_ids([list(c) for c in contexts], turn_params, budgets=budgets)
        if batched:
            pending = [(envs[e], completions[c * n + k].text) for c, members in enumerate(contexts.values())
                       for k, e in enumerate(members)]
            type(envs[0]).prefetch([env for env, _ in pending], [text for _, text in pending])
        still = []
        for c, members in enumerate(contexts.values()):
            for k, e in enumerate(members):
                if _turn(episodes[e], envs[e], completions[c * n + k], limits, policy.tokenizer):
                    still.append(e)
        active = sorted(still)
    for e in active:
        episodes[e].finish = "max_turns"
    return episodes


def _run_inline(policy, episodes: list[Episode], envs: list, params: SamplingParams, limits: EpisodeLimits
                ) -> list[Episode]:
    """`run_episodes` in one engine call (LocalPolicy): a row that stops at a tool call gets the environment's answer
    fed to it as forced tokens (engine.py `on_stop`) while the other rows decode on, instead of every episode waiting
    for the slowest turn of each round. The same rules: observations masked and never re-tokenized, the token budget
    (an answer that would reach it ends the episode), `max_turns` (the last turn's answer is not appended)."""
    tokenizer = policy.tokenizer
    n = params.n
    turn_start = [0] * len(episodes)  # where each episode's current turn begins in its tokens

    def on_stop(r: int, tokens: list[int]) -> list[int] | None:
        ep, env = episodes[r], envs[r]
        text = tokenizer.decode(tokens[turn_start[r]:])
        ep.turns += 1
        ep.text += text
        observed = _answer(ep, env, text, len(tokens), limits, tokenizer, last=ep.turns >= limits.max_turns)
        if observed is not None:
            turn_start[r] = len(tokens) + len(observed)
        return observed

    starts = [episodes[i].prompt_ids for i in range(0, len(episodes), n)]
    call = replace(params, max_new_tokens=min(params.max_new_tokens * limits.max_turns, limits.max_tokens))
    budgets = [episodes[i].budget for i in range(0, len(episodes), n)]
    completions = policy.generate_ids(starts, call, on_stop=on_stop, budgets=budgets)
    for ep, env, c, start in zip(episodes, envs, completions, turn_start):
        ep.token_ids, ep.logprobs = list(c.token_ids), list(c.logprobs)
        ep.mask = list(c.mask) if c.mask is not None else [True] * len(c.token_ids)
        ep.eos = c.finish_reason == "eos"
        if ep.finish:  # ended by on_stop: done, max_turns or budget
            continue
        tail = tokenizer.decode(c.token_ids[start:])
        ep.turns += 1
        ep.text += tail
        if c.finish_reason == "length":  # cut at the budget
            ep.finish, ep.reward = "budget", 0.0
            continue
        result = env.step(_seen(ep, tail))  # the last turn ended with EOS
        ep.info.append(result.info)
        ep.reward += result.reward
        ep.finish = "done" if result.done else "max_turns"
    return episodes


def sample_episodes(policy, problems: Sequence[Problem], make_env: Callable[[], Environment], params: SamplingParams
                    ) -> list[Completion]:
    """`params.n` episodes per problem as masked Completions (`episode_completion`), problem-major: what sampling,
    evaluation and the online learners draw from a task with an environment. `params.max_new_tokens` is the
    episode's token budget (observations included); a turn ends only at the environment's stop strings."""
    episodes = run_episodes(policy, problems, make_env, replace(params, stop=()),
                            EpisodeLimits(max_tokens=params.max_new_tokens))
    return [episode_completion(e) for e in episodes]


def episode_completion(ep: Episode) -> Completion:
    """An episode as one Completion for the learners: all its tokens, `mask` False on observations; finish "eos"
    when the model ended it with EOS."""
    return Completion(ep.problem_index, list(ep.token_ids), ep.text, list(ep.logprobs),
                      "eos" if ep.eos else "length" if ep.finish != "done" else "stop", list(ep.mask))


def _turn(ep: Episode, env: Environment, completion, limits: EpisodeLimits, tokenizer) -> bool:
    """Apply one sampled turn to `ep`; whether the episode goes on."""
    room = ep.budget - len(ep.token_ids)
    tokens, logprobs, text = completion.token_ids, completion.logprobs, completion.text
    ep.turns += 1
    ep.eos = completion.finish_reason == "eos"
    if len(tokens) > room or (len(tokens) == room and completion.finish_reason == "length"):  # into the budget
        ep.token_ids += tokens[:room]
        ep.mask += [True] * len(tokens[:room])
        ep.logprobs += logprobs[:room]
        ep.text += tokenizer.decode(tokens[:room])
        ep.finish, ep.reward = "budget", 0.0
        return False
    ep.token_ids += tokens
    ep.mask += [True] * len(tokens)
    ep.logprobs += logprobs
    ep.text += text
    observed = _answer(ep, env, text, len(ep.token_ids), limits, tokenizer)
    if observed is None:
        return False
    ep.token_ids += observed
    ep.mask += [False] * len(observed)
    ep.logprobs += [0.0] * len(observed)
    return True


def _answer(ep: Episode, env: Environment, text: str, length: int, limits: EpisodeLimits, tokenizer,
            last: bool = False) -> list[int] | None:
    """Step `env` with a finished turn's `text` (the episode now holds `length` tokens): the ids of the answer when
    the episode goes on (its text added to `ep.text`), else None with `ep.finish` set: done, the turn allowed last
    (`last`), or an answer that would reach the token budget, leaving the model no token (reward 0)."""
    result = env.step(_seen(ep, text))
    ep.info.append(result.info)
    ep.reward += result.reward
    if result.done:
        ep.finish = "done"
        return None
    if last:
        ep.finish = "max_turns"
        return None
    observed = tokenizer.encode(result.observation)
    if length + len(observed) >= ep.budget:
        ep.finish, ep.reward = "budget", 0.0
        return None
    ep.text += result.observation
    return observed


def _seen(ep: Episode, text: str) -> str:
    """A turn's text as the environment reads it: after what the episode's context left open, on its first step."""
    text, ep.opened = ep.opened + text, ""
    return text
