"""Episodes in one engine call (engine `on_stop`): forced answers, batch independence, and the same greedy episodes as
the call-per-turn path."""

import torch

from searchlearn.env import EpisodeLimits, run_episodes
from searchlearn.policy.policy import LocalPolicy
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.search.scripted import stepping_policy
from searchlearn.tasks.countdown import WORDS, CountdownConfig, CountdownTask
from searchlearn.types import SamplingParams

TOK = TaskTokenizer(WORDS, digits=True)
TASK = CountdownTask(CountdownConfig(checks="tool"))


def asking_policy() -> LocalPolicy:
    """A random model that often writes "?" (a tool call's end) and sometimes ends."""
    policy = stepping_policy(TOK, newline_bias=0.0, eos_bias=0.5)
    with torch.no_grad():
        policy.model.lm_head.bias[TOK.vocab["?"]] = 2.5
    return policy


def test_forced_ids_follow_a_stop_and_the_row_goes_on():
    policy = asking_policy()
    prompts = policy.encode_prompts(["3 7 25 -> 46\n", "1 2 3 -> 6\n"])
    answers = []

    def on_stop(row, tokens):
        answers.append(row)
        return TOK.encode(" 5 6") if len(answers) <= 2 else None

    out = policy.generate_ids(prompts, SamplingParams(n=2, temperature=1.0, max_new_tokens=40, seed=3, stop=("?",)),
                              on_stop=on_stop)
    forced = [c for c in out if c.mask is not None and not all(c.mask)]
    assert forced and all(len(c.mask) == len(c.token_ids) == len(c.logprobs) for c in out)
    answer = TOK.encode(" 5 6")
    for c in forced:
        k, n = c.mask.index(False), len(answer)
        assert TOK.decode(c.token_ids[k - 1 : k]) == "?" and c.token_ids[k : k + n] == answer
        assert c.mask[k : k + n] == [False] * n and c.logprobs[k : k + n] == [0.0] * n
        assert all(c.mask[k + n :])  # sampling resumed after the answer


def test_inline_episodes_equal_the_turn_by_turn_ones_when_greedy():
    policy = asking_policy()
    problems = TASK.problems("train", 6, seed=1)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=80)
    limits = EpisodeLimits(max_turns=64, max_tokens=80)
    inline = run_episodes(policy, problems, TASK.environment(), params, limits)
    turns = run_episodes(policy, problems, TASK.environment(), params, limits, inline=False)
    assert sum(ep.turns for ep in inline) > len(problems)  # tools were called
    for a, b in zip(inline, turns):
        assert (a.token_ids, a.mask, a.text, a.reward, a.finish, a.turns, a.eos) == \
            (b.token_ids, b.mask, b.text, b.reward, b.finish, b.turns, b.eos)


def test_an_inline_episode_does_not_depend_on_its_batch():
    policy = asking_policy()
    problems = TASK.problems("train", 5, seed=2)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=60, seed=9)
    together = run_episodes(policy, problems, TASK.environment(), params, EpisodeLimits(max_tokens=60))
    alone = run_episodes(policy, problems[3:4], TASK.environment(), params, EpisodeLimits(max_tokens=60))
    assert [ep.token_ids for ep in together[6:8]] == [ep.token_ids for ep in alone]
