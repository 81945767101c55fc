"""Environments: tool schemas, calls that go wrong (answered, never raised), both call protocols on malformed text,
and the multi-turn rollout's token bookkeeping (observations appended as ids with mask 0, the budget rule, max
turns), with a scripted policy whose every turn is known."""

from __future__ import annotations

import random

import pytest

from searchlearn.env import EpisodeLimits, HermesParser, TagParser, ToolEnv, call_tool, run_episodes, tool
from searchlearn.learn.sft import trace_example
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.tasks.countdown import WORDS, CountdownConfig, CountdownTask
from searchlearn.tasks.countdown_tool import countdown_env, last_tool, need_tool
from searchlearn.types import Completion, SamplingParams, ToolCall


def add(a: int, b: int = 1) -> int:
    """Add two integers."""
    return a + b


def test_tool_schema_from_the_signature():
    t = tool(add)
    assert t.schema == {"type": "function", "function": {"name": "add", "description": "Add two integers.",
                        "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
                                       "b": {"type": "integer"}}, "required": ["a"]}}}


def test_call_tool_answers_every_mistake():
    tools = {"add": tool(add)}
    assert call_tool(tools, ToolCall("add", {"0": "2", "1": "3"})) == "5"
    assert call_tool(tools, ToolCall("add", {"a": 2})) == "3"
    assert call_tool(tools, ToolCall("mul", {})) == "error: no tool 'mul' (tools: add)"
    assert call_tool(tools, ToolCall("add", {"a": "two"})) == "error: a must be integer, got 'two'"
    assert call_tool(tools, ToolCall("add", {"b": 1})) == "error: add needs a"
    assert call_tool(tools, ToolCall("add", {"c": 1})) == "error: add takes a, b; got 'c'"
    assert call_tool(tools, ToolCall(error="bad")) == "error: bad"
    assert call_tool({"need": need_tool()}, ToolCall("need", {"0": "46", "1": "7"})) == "39 53 - - - 322"
    assert call_tool({"need": need_tool()}, ToolCall("need", {"0": "4600", "1": "7"})).startswith("error: ValueError")


def test_tag_parser():
    parser = TagParser(["need"])
    assert parser.parse("try 7: need 46 7 ?") == ToolCall("need", {"0": "46", "1": "7"})
    assert parser.parse("try 7: need 46 7 ") is None  # no end marker: the turn made no call
    assert parser.parse("try 7: 46 7 ?").error.startswith("no tool name")
    assert parser.observation("1 2") == " 1 2"


@pytest.mark.parametrize("text, error", [
    ("<tool_call>{not json}</tool_call>", "not JSON"),
    ('{"name": "add"}</tool_call>', "without <tool_call>"),
    ('<tool_call>["add"]</tool_call>', '{"name"'),
    ('<tool_call>{"name": "add", "arguments": [1]}</tool_call>', "JSON object"),
    ('<tool_call>{"name": "add", "arguments": "{oops"}</tool_call>', "JSON object"),
])
def test_hermes_parser_on_malformed_calls(text, error):
    call = HermesParser().parse(text)
    assert call is not None and error in call.error


def test_hermes_parser_reads_a_call():
    parser = HermesParser()
    text = 'Let me add.\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 5}}\n</tool_call>'
    assert parser.parse(text) == ToolCall("add", {"a": 2, "b": 5})
    assert parser.parse('<tool_call>{"name": "add", "arguments": "{\\"a\\": 1}"}</tool_call>').arguments == {"a": 1}
    assert parser.parse("no call here") is None
    assert parser.observation("7") == "\n<tool_response>\n7\n</tool_response>\n"
    env = ToolEnv(CountdownTask(), [tool(add)], parser)
    env.reset(CountdownTask().problems("train", 1)[0])
    assert env.step(text).observation == parser.observation("7")


class TurnScript:
    """A policy for rollout tests: `turns[k]` is what it writes at its k-th call (the k-th turn of every episode), cut
    at the stop strings like the engine cuts."""

    def __init__(self, tokenizer, turns: list[str]):
        self.tokenizer, self.turns, self.calls = tokenizer, turns, []

    def encode_prompts(self, prompts):
        return [[self.tokenizer.bos_id] + self.tokenizer.encode(p) for p in prompts]

    def generate_ids(self, prompt_ids, params: SamplingParams, budgets=None):
        self.calls.append((prompt_ids, params))
        out = []
        for i, ids in enumerate(prompt_ids):
            text = self.turns[len(self.calls) - 1]
            cut = min((text.find(s) + len(s) for s in params.stop if s in text), default=len(text))
            finish = "stop" if cut < len(text) or any(text.endswith(s) for s in params.stop) else "eos"
            ids = self.tokenizer.encode(text[:cut])[: min(params.max_new_tokens, budgets[i] if budgets else 1 << 30)]
            finish = "length" if len(ids) < len(self.tokenizer.encode(text[:cut])) else finish
            out += [Completion(i, ids, self.tokenizer.decode(ids), [-0.5] * len(ids), finish)] * params.n
        return out


@pytest.fixture
def tool_task():
    return CountdownTask(CountdownConfig(checks="tool"))


def test_observations_are_appended_as_ids_with_mask_zero(tool_task):
    tokenizer = TaskTokenizer(WORDS, digits=True)
    problem = [p for p in tool_task.problems("test", 50, seed=3) if p.data["nums"] == sorted(p.data["nums"])][0]
    a, b, c = problem.data["nums"]
    T = problem.data["target"]
    trace = tool_task.trace_segments(problem, random.Random(0))
    answer = [text for text, _ in trace if text.startswith("answer")][0]
    policy = TurnScript(tokenizer, [f"try {a}: need {T} {a} ?", f" | 5 no\n{answer}"])
    [ep] = run_episodes(policy, [problem], lambda: countdown_env(tool_task), SamplingParams(n=1, temperature=0.0))
    observation = " " + need_tool().fn(T, a)
    turn1, turn2 = (tokenizer.encode(t) for t in (f"try {a}: need {T} {a} ?", f" | 5 no\n{answer}"))
    assert ep.token_ids == turn1 + tokenizer.encode(observation) + turn2
    assert ep.mask == [True] * len(turn1) + [False] * len(tokenizer.encode(observation)) + [True] * len(turn2)
    assert ep.logprobs == [-0.5] * len(turn1) + [0.0] * len(tokenizer.encode(observation)) + [-0.5] * len(turn2)
    assert ep.text == f"try {a}: need {T} {a} ?{observation} | 5 no\n{answer}"
    assert (ep.reward, ep.turns, ep.finish) == (1.0, 2, "done")
    assert policy.calls[1][0][0] == policy.calls[0][0][0] + turn1 + tokenizer.encode(observation)  # ids only grow
    assert policy.calls[0][1].stop == ("?",)


def test_solver_traces_replayed_through_the_environment_get_the_same_tool_answers():
    """Every tool answer a trace carries (need lists, and the calculator's values of checks, failing ones too) is what
    the environment answers when the model's turns are played to it."""
    task = CountdownTask(CountdownConfig(checks="tool", corrections=1.0, calculator=True))
    tokenizer = TaskTokenizer(WORDS, digits=True)
    failing_checks = 0
    for i, problem in enumerate(task.problems("train", 30, seed=5)):
        segments = task.trace_segments(problem, random.Random(i))
        turns, text = [], ""
        for k, (piece, _) in enumerate(segments):
            if k and segments[k - 1][0].endswith("?"):  # the tool's answer: the environment writes it
                turns.append(text)
                text = ""
            else:
                text += piece
        turns.append(text)  # the last turn ends without a stop string: at eos
        [ep] = run_episodes(TurnScript(tokenizer, turns), [problem], lambda: countdown_env(task),
                            SamplingParams(temperature=0.0), EpisodeLimits(max_tokens=10_000))
        assert ep.text == "".join(piece for piece, _ in segments) and ep.reward == 1.0
        failing_checks += ep.text.count(" no\nback")
    assert failing_checks > 0  # the slips caught by the calculator are among them


def test_the_last_tool_computes_the_move_and_the_verdict():
    """`last a∘b T`: the result under Countdown's rules ("-" where the move is not allowed) and whether it is T."""
    last = last_tool().fn
    assert last("12+7", 19) == "19 yes" and last("12*7", 19) == "84 no"
    assert last("5-7", 19) == "- no" and last("8/3", 2) == "- no" and last("8/4", 2) == "2 yes"
    with pytest.raises(ValueError):
        last("12+(7)", 19)  # one move, not an expression: the tool parses, it never evaluates


def test_tool_verdict_traces_replay_and_leave_no_verdict_to_the_model():
    """With `verdict: tool` every final move is the environment's: replayed turn by turn, the episode rebuilds the
    trace exactly, each "yes|no" after a target sits in an answer the model does not write, and the gold values of
    the caught slips' final lines are 0 while the trace still ends solved."""
    task = CountdownTask(CountdownConfig(checks="tool", corrections=1.0, verdict="tool"))
    assert "last" in task.words
    tokenizer = TaskTokenizer(task.words, digits=True)
    caught = 0
    for i, problem in enumerate(task.problems("train", 30, seed=6)):
        segments = task.trace_segments(problem, random.Random(i))
        text = "".join(piece for piece, _ in segments)
        finals = [line for line in text.split("\n") if line.startswith("last ")]
        assert finals and not any(" vs " in line for line in text.split("\n"))
        for k, (piece, trained) in enumerate(segments):
            if k and segments[k - 1][0].startswith("last "):
                assert not trained and piece.endswith((" yes", " no"))
        turns, turn = [], ""
        for k, (piece, _) in enumerate(segments):
            if k and segments[k - 1][0].endswith("?"):
                turns.append(turn)
                turn = ""
            else:
                turn += piece
        turns.append(turn)
        [ep] = run_episodes(TurnScript(tokenizer, turns), [problem], lambda: countdown_env(task),
                            SamplingParams(temperature=0.0), EpisodeLimits(max_tokens=10_000))
        assert ep.text == text and ep.reward == 1.0
        values = task.gold_step_values(problem, text)
        lines = task.steps(text)
        for line, value in zip(lines, values):
            if line.startswith("last "):
                assert value == float(line.rstrip().endswith("yes"))
                caught += line.rstrip().endswith("no")
        assert values[-1] == 1.0
    assert caught > 0
    with pytest.raises(ValueError, match="checks='tool'"):
        CountdownConfig(verdict="tool")


def test_an_observation_that_would_overflow_ends_the_episode(tool_task):
    tokenizer = TaskTokenizer(WORDS, digits=True)
    problem = tool_task.problems("test", 1)[0]
    call = f"try 1: need {problem.data['target']} 1 ?"
    n_call = len(tokenizer.encode(call))
    limits = EpisodeLimits(max_turns=8, max_tokens=n_call + 3)  # the call fits, its answer does not
    [ep] = run_episodes(TurnScript(tokenizer, [call] * 8), [problem], lambda: countdown_env(tool_task),
                        SamplingParams(temperature=0.0), limits)
    assert (ep.finish, ep.reward, ep.turns, len(ep.token_ids)) == ("budget", 0.0, 1, n_call)
    assert all(ep.mask)
    n_answer = len(tokenizer.encode(" " + need_tool().fn(problem.data["target"], 1)))
    exact = EpisodeLimits(max_turns=8, max_tokens=n_call + n_answer)  # the answer would fill the budget exactly
    [ep] = run_episodes(TurnScript(tokenizer, [call] * 8), [problem], lambda: countdown_env(tool_task),
                        SamplingParams(temperature=0.0), exact)
    assert (ep.finish, ep.turns, len(ep.token_ids)) == ("budget", 1, n_call)  # not a turn with no room to write
    # a problem's own budget (a tree branch's: what its prefix left) rules as the limit does, the others keep theirs
    wide = EpisodeLimits(max_turns=8, max_tokens=10_000)
    own, other = run_episodes(TurnScript(tokenizer, [call] * 8), [problem, problem], lambda: countdown_env(tool_task),
                              SamplingParams(temperature=0.0), wide, budgets=[n_call + 3, 10_000])
    assert (own.finish, own.turns, len(own.token_ids), own.budget) == ("budget", 1, n_call, n_call + 3)
    assert (other.finish, other.turns, other.budget) == ("max_turns", 8, 10_000)


def test_a_context_that_splits_a_tool_call_is_read_whole(tool_task):
    """A tree branch from inside a turn (`opened`: that turn's text so far) continues the call its prefix began: the
    environment reads the whole call and answers it; without `opened` it would see half a call and answer an error."""
    tokenizer = TaskTokenizer(WORDS, digits=True)
    problem = tool_task.problems("test", 1)[0]
    T = problem.data["target"]
    start = tokenizer.encode("try 1: need")
    context = [tokenizer.bos_id] + tokenizer.encode(problem.prompt) + start
    answer = tokenizer.encode(" " + need_tool().fn(T, 1))
    for opened in (["try 1: need"], None):
        [ep] = run_episodes(TurnScript(tokenizer, [f" {T} 1 ?", "answer"]), [problem], lambda: countdown_env(tool_task),
                            SamplingParams(temperature=0.0), EpisodeLimits(max_turns=2, max_tokens=10_000),
                            contexts=[context], opened=opened)
        assert ep.text.startswith(f" {T} 1 ?")  # the episode's own text: the continuation only
        observed = [t for t, m in zip(ep.token_ids, ep.mask) if not m]
        assert ep.info[0]["error"] == (opened is None) and (observed == answer) == (opened is not None)


def test_max_turns_and_error_observations(tool_task):
    tokenizer = TaskTokenizer(WORDS, digits=True)
    problem = tool_task.problems("test", 1)[0]
    policy = TurnScript(tokenizer, ["try 1: 5 ?"] * 3)  # no tool name: an error comes back, the episode goes on
    [ep] = run_episodes(policy, [problem], lambda: countdown_env(tool_task), SamplingParams(temperature=0.0),
                        EpisodeLimits(max_turns=3, max_tokens=10_000))
    assert (ep.finish, ep.turns, ep.reward) == ("max_turns", 3, 0.0)
    assert [i["error"] for i in ep.info] == [True, True, True]


def test_sft_masks_the_tool_answer(tool_task):
    tokenizer = TaskTokenizer(WORDS, digits=True)
    problem = tool_task.problems("train", 1)[0]
    segments = tool_task.trace_segments(problem, random.Random(1))
    prompt, completion, trained = trace_example(tokenizer, problem.prompt, segments)
    answers = [text for text, keep in segments if not keep and text.startswith(" ") and "|" not in text]
    untrained = [tokenizer.decode([t]) for t, k in zip(completion, trained) if not k]
    assert answers and "".join(untrained).replace(" ", "") == "".join(answers).replace(" ", "")[: len("".join(
        untrained).replace(" ", ""))]
    assert tokenizer.decode(completion).count("?") == len([s for s in segments if s[0].endswith("?")])


def test_online_and_expert_iteration_data_mask_the_observations(tool_task):
    """GRPO/PPO's rollout batch and expert iteration's SFT examples: action mask 0 exactly on the tool's answers."""
    from searchlearn.learn.expert_iteration import expert_examples
    from searchlearn.learn.rollout import sample_rollout
    from searchlearn.learn.sft import collate
    from searchlearn.reward.verifiers import VerifierReward
    from searchlearn.types import Ledger, SearchResult, Trajectory

    tokenizer = TaskTokenizer(WORDS, digits=True)
    problem = tool_task.problems("test", 1, seed=4)[0]
    T = problem.data["target"]
    policy = TurnScript(tokenizer, [f"try 2: need {T} 2 ?", " | 1 no\nanswer 1+2<eos>"])
    policy.ledger = Ledger()
    rollout = sample_rollout(policy, [problem], VerifierReward(tool_task), SamplingParams(n=2, temperature=1.0),
                             tool_task.environment())
    observed = tokenizer.encode(" " + need_tool().fn(T, 2))
    turn1 = tokenizer.encode(f"try 2: need {T} 2 ?")
    for row, completion in enumerate(rollout.completions):
        p = len(rollout.prompt_ids[row])
        actions = rollout.batch.action_mask[row, p - 1 : p - 1 + len(completion.token_ids)].tolist()
        assert actions == [1.0] * len(turn1) + [0.0] * len(observed) + [1.0] * (len(actions) - len(turn1)
                                                                                  - len(observed))
        assert completion.token_ids[len(turn1) : len(turn1) + len(observed)] == observed
    t = Trajectory(problem.id, problem.prompt, rollout.completions[0].text, token_ids=rollout.completions[0].token_ids,
                   reward=1.0, correct=True, mask=rollout.completions[0].mask)
    [example] = expert_examples([SearchResult(problem.id, None, [t], Ledger())], tokenizer, 1)
    _, targets, loss_mask = collate([example], tokenizer.pad_id)
    p = len(example[0])
    assert loss_mask[0, p - 1 : p - 1 + len(example[1])].tolist() == t.mask + [True]


def test_grpo_trains_through_the_environment(tool_task):
    """One GRPO step of a tiny random model with multi-turn rollouts: episodes go in, the loss runs, weights move."""
    import torch

    from conftest import tiny_model
    from searchlearn.learn.grpo import GRPOConfig, train_grpo
    from searchlearn.policy.policy import LocalPolicy
    from searchlearn.reward.verifiers import VerifierReward

    tokenizer = TaskTokenizer(WORDS, digits=True)
    model = tiny_model(vocab=tokenizer.vocab_size, max_position_embeddings=128)
    policy = LocalPolicy(model, tokenizer)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = GRPOConfig(steps=1, prompts_per_step=2, group_size=2, max_new_tokens=40, lr=1e-2, log_kl_init=False)
    out = train_grpo(policy, tool_task.problems("train", 4), cfg, lambda ps, cs: [float(i % 2) for i in range(len(cs))],
                     environment=tool_task.environment())
    assert out["steps"] == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_loop_config_takes_every_searcher_and_learner_with_an_environment():
    from searchlearn.loop.config import load_loop_config

    load_loop_config("configs/loop_ei_bon.yaml", ["task.checks=tool"])  # best-of-N + expert iteration: episodes
    load_loop_config("configs/loop_ei_beam.yaml", ["task.checks=tool"])  # tree-searched trajectories carry masks
    load_loop_config("configs/loop_ei_mcts.yaml", ["task.checks=tool", "phases.0.learner=step_dpo"])
    load_loop_config("configs/loop_grpo.yaml", ["task.checks=tool", "phases.0.learner=tree_grpo"])  # tree episodes


def test_tree_searched_trajectories_mask_the_observations():
    """A step that holds a tool's answer keeps its mask on its node; a path's mask joins its nodes' (None = all
    model tokens) and reaches the trajectory a learner reads."""
    from searchlearn.search.steps import SearchConfig, add_children, trajectory
    from searchlearn.types import Problem, SearchTree, join_masks

    assert join_masks([(None, 2), (None, 3)]) is None
    assert join_masks([(None, 2), ([True, False, True], 3)]) == [True, True, True, False, True]
    tree = SearchTree("p")
    cfg = SearchConfig(max_new_tokens=64)
    [a] = add_children(tree, 0, [Completion(0, [5, 6], "ab\n", [-1.0, -1.0], "stop")], cfg)
    [b] = add_children(tree, a, [Completion(0, [7, 8, 9, 10], "c?d\n", [-1.0] * 4, "stop",
                                            mask=[True, False, False, True])], cfg)
    assert tree.nodes[a].mask is None and tree.nodes[b].mask == [True, False, False, True]
    t = trajectory(Problem("p", "q"), tree, b, 1.0)
    assert t.token_ids == [5, 6, 7, 8, 9, 10] and t.mask == [True, True, True, False, False, True]
    assert tree.mask(a) is None and trajectory(Problem("p", "q"), tree, a, 0.0).mask is None


def test_preference_pairs_from_episodes_train_only_the_model_tokens():
    """DPO on episodes with tools: the pair keeps its sampled ids (never re-tokenized) and its masks, and the summed
    log-probability of each side counts exactly the model's tokens (hand-summed from the per-token log-probs)."""
    import torch

    from conftest import tiny_model
    from searchlearn.learn.dpo import pair_logprobs, solution_pairs, step_pairs, tokenize_pairs, trained_tokens
    from searchlearn.policy.policy import sequence_logprobs
    from searchlearn.search.steps import SearchConfig, add_children
    from searchlearn.types import Ledger, SearchResult, SearchTree, Trajectory

    tokenizer = TaskTokenizer(WORDS, digits=True)
    good_ids, bad_ids = tokenizer.encode("try 2: need 5 2 ? 3 7"), tokenizer.encode("try 1: need 5 1 ? 4 6 no")
    good_mask = [True] * 11 + [False] * (len(good_ids) - 11)
    bad_mask = [i % 3 != 1 for i in range(len(bad_ids))]
    trajectories = [Trajectory("p", "1 2 -> 5", "good", token_ids=good_ids, reward=1.0, mask=good_mask),
                    Trajectory("p", "1 2 -> 5", "bad", token_ids=bad_ids, reward=0.0, mask=bad_mask)]
    [pair] = solution_pairs([SearchResult("p", None, trajectories, Ledger())])
    [(prompt, chosen, rejected, chosen_mask, rejected_mask)] = tokenize_pairs([pair], tokenizer)
    eos = tokenizer.eos_id
    assert prompt == [tokenizer.bos_id] + tokenizer.encode("1 2 -> 5")
    assert (chosen, chosen_mask) == (good_ids + [eos], good_mask + [True])
    assert (rejected, rejected_mask) == (bad_ids + [eos], bad_mask + [True])
    assert trained_tokens((prompt, chosen, rejected, chosen_mask, rejected_mask), 2) == sum(bad_mask) + 1

    torch.manual_seed(0)
    model = tiny_model(vocab=tokenizer.vocab_size, max_position_embeddings=128).eval()
    with torch.no_grad():
        c, r = pair_logprobs(model, [(prompt, chosen, rejected, chosen_mask, rejected_mask)], tokenizer.pad_id)
        for ids, mask, got in ((chosen, chosen_mask, c), (rejected, rejected_mask, r)):
            seq = torch.tensor([prompt + ids])
            per_token = sequence_logprobs(model, seq, torch.ones_like(seq))  # (1, T−1)
            want = sum(per_token[0, len(prompt) - 1 + i].item() for i, keep in enumerate(mask) if keep)
            assert got.item() == pytest.approx(want, abs=1e-4)
            assert got.item() != pytest.approx(per_token[0, len(prompt) - 1:].sum().item(), abs=1e-3)

    # step pairs from a tree with a tool's answer in one step: the shared path's ids are the context
    tree = SearchTree("p")
    cfg = SearchConfig(max_new_tokens=64)
    [a] = add_children(tree, 0, [Completion(0, good_ids[:4], "try ", [-1.0] * 4, "stop", mask=[True] * 4)], cfg)
    kids = add_children(tree, a, [Completion(0, good_ids[4:], "x", [-1.0], "stop", mask=good_mask[4:]),
                                  Completion(0, bad_ids[4:], "y", [-1.0], "stop", mask=bad_mask[4:])], cfg)
    tree.nodes[kids[0]].step.score, tree.nodes[kids[1]].step.score = 1.0, 0.0
    [step_pair] = step_pairs(tree, "1 2 -> 5")
    [(prompt2, chosen2, rejected2, mask_c, mask_r)] = tokenize_pairs([step_pair], tokenizer)
    assert prompt2 == prompt + good_ids[:4]
    assert chosen2 == good_ids[4:] + [eos] * step_pair.chosen_ends and mask_c[: len(good_ids) - 4] == good_mask[4:]
    assert rejected2[: len(bad_ids) - 4] == bad_ids[4:] and mask_r[: len(bad_ids) - 4] == bad_mask[4:]


def test_tool_policy_answers_calls_inside_a_step_for_searches(tool_task):
    """ToolPolicy.generate: a step ("\\n" stop) whose text calls a tool comes back with the answer inside it (masked),
    finish "stop"; without tools the policy is returned as is."""
    from searchlearn.env.tool_policy import ToolPolicy, with_tools
    from searchlearn.types import Ledger

    tokenizer = TaskTokenizer(WORDS, digits=True)
    problem = tool_task.problems("test", 1, seed=4)[0]
    T = problem.data["target"]
    inner = TurnScript(tokenizer, [f"try 2: need {T} 2 ?", " | 1 no\ntry 1: need", "unused"])
    inner.ledger = Ledger()
    policy = with_tools(inner, tool_task)
    assert isinstance(policy, ToolPolicy) and policy.ledger is inner.ledger and with_tools(policy, tool_task) is policy
    assert with_tools(inner, CountdownTask()) is inner
    [c] = policy.generate([problem.prompt], SamplingParams(n=1, temperature=0.0, stop=("\n",), max_new_tokens=200))
    observation = " " + need_tool().fn(T, 2)
    assert c.text == f"try 2: need {T} 2 ?{observation} | 1 no\n" and c.finish_reason == "stop"
    n_call, n_obs = len(tokenizer.encode(f"try 2: need {T} 2 ?")), len(tokenizer.encode(observation))
    assert c.mask == [True] * n_call + [False] * n_obs + [True] * len(tokenizer.encode(" | 1 no\n"))
    assert len(inner.calls) == 2 and inner.calls[1][1].stop == ("\n", "?")  # the step's stop and the call's


def test_tree_rollouts_with_tools_branch_after_the_answers_and_never_train_them(tool_task):
    """tree_grpo on a task with tools: a branch continues the chain's ids (the tool's answer included, still masked);
    the rows train the chain's segment once and no answer token at all."""
    from searchlearn.learn.rollout import sample_rollout
    from searchlearn.learn.tree_rollout import TreeShape, tree_advantages
    from searchlearn.learn.advantages import treerl_advantages
    from searchlearn.reward.verifiers import VerifierReward
    from searchlearn.types import Ledger

    tokenizer = TaskTokenizer(WORDS, digits=True)
    problem = tool_task.problems("test", 1, seed=4)[0]
    T = problem.data["target"]
    policy = TurnScript(tokenizer, [f"try 2: need {T} 2 ?", " | 1 no\nanswer 1+2", "answer 2+1"])
    policy.ledger = Ledger()
    shape = TreeShape(roots=1, levels=1, points=1, children=1, branch_at="step")
    rollout = sample_rollout(policy, [problem], VerifierReward(tool_task),
                             SamplingParams(n=1, temperature=1.0, max_new_tokens=200, seed=0),
                             tool_task.environment(), shape)
    chain, branch = rollout.completions
    call, observed = tokenizer.encode(f"try 2: need {T} 2 ?"), tokenizer.encode(" " + need_tool().fn(T, 2))
    head = len(call) + len(observed) + len(tokenizer.encode(" | 1 no\n"))
    assert chain.text.endswith("answer 1+2") and branch.text.endswith("no\nanswer 2+1")
    assert branch.token_ids[:head] == chain.token_ids[:head] and branch.mask[:head] == chain.mask[:head]
    assert chain.mask[len(call) : len(call) + len(observed)] == [False] * len(observed)
    advantages = tree_advantages(rollout, treerl_advantages)
    trained = [rollout.batch.action_mask[r, len(rollout.prompt_ids[r]) - 1 :].tolist() for r in range(2)]
    assert trained[0][len(call) : len(call) + len(observed)] == [0.0] * len(observed)  # the answer: never
    assert trained[1][:head] == [0.0] * head  # the shared head: in the chain's row only
    a, b = tokenizer.encode("answer 1+2"), tokenizer.encode("answer 2+1")
    shared = next(k for k, (x, y) in enumerate(zip(a, b)) if x != y)  # "answer " is the chain's too
    assert sum(trained[1]) == len(b) - shared + 1  # the branch trains its own segment and its eos
    assert advantages.shape == rollout.batch.action_mask.shape
