"""Self-evaluation as a reward (reward/selfeval.py) and calibration (reward/quality.py): scores equal the verdict
probabilities computed by hand from a full forward of the same model, one score per step, the tokens read charged,
model text never raises; the batched next-token reader of both policy backends; ECE and reliability bins by hand."""

import math

import pytest
import torch
from conftest import stepping_policy

from searchlearn.loop.learners import round_rewards
from searchlearn.policy.hf_tokenizer import HFTokenizer
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.policy import LocalPolicy, next_token_logprobs
from searchlearn.policy.tiny import spread_weights, tiny_model
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.policy.transformers_policy import TransformersPolicy
from searchlearn.report.plots import reliability
from searchlearn.reward.quality import calibration
from searchlearn.reward.scorers import make_scorer
from searchlearn.reward.selfeval import (
    QUESTION,
    SelfEvalOutcome,
    SelfEvalScorer,
    word_ids,
)
from searchlearn.tasks.countdown import WORDS, CountdownTask
from searchlearn.tasks.math import MathTask
from searchlearn.types import Problem, Step

TASK = CountdownTask()
TOK = TaskTokenizer(WORDS, max_number=99)
PROBLEM = Problem("p", "3 7 25 -> 46\n", {"nums": [3, 7, 25], "target": 46})
#       step 0: a move        step 1: a final line (verdict)  step 2: check             step 3: answer
TEXT = "7*3=21 | 25 21\n" "25+21=46 vs 46 yes\n" "check 25+(7*3)=46 ok\n" "answer 25+(7*3)\n"


def spread_policy(seed: int = 0) -> LocalPolicy:
    """A random 2-layer model with spread weights (logits far from uniform) and a head biased towards the probe words,
    so every verdict probability is far from 0, ½ and 1 and a wrong position would show."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    model = LlamaForCausalLM(config)
    spread_weights(model, seed)
    head = torch.nn.Linear(32, TOK.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        for word, bias in (("back", 3.0), ("yes", 3.5), ("no", 2.5)):
            head.bias[TOK.vocab[word]] = bias
    model.lm_head = head
    return LocalPolicy(model, TOK)


def full_forward_probs(policy: LocalPolicy, ids: list[int]) -> torch.Tensor:
    """softmax of one unpadded forward: (T, V), row t = the next-token distribution after ids[: t + 1]."""
    with torch.no_grad():
        return torch.softmax(policy.model(torch.tensor([ids]))[0].double(), -1)


# -- calibration ---------------------------------------------------------------------------------------------------
def test_calibration_bins_and_ece_by_hand():
    scores = [0.05, 0.15, 0.12, 0.95, 1.0, 0.9, -0.2, 1.7, 0.5, 0.25]  # -0.2 -> 0.0 and 1.7 -> 1.0 (clipped)
    labels = [0, 1, 0, 1, 1, 0, 0, 1, 1, 0]
    cal = calibration(scores, labels, bins=4)
    count = [b["count"] for b in cal["bins"]]
    assert count == [4, 1, 1, 4] and cal["n"] == 10  # 0.25 opens bin 1, 0.5 opens bin 2, 1.0 closes bin 3
    b0, b1, b2, b3 = cal["bins"]
    assert (b0["lo"], b0["hi"], b3["lo"], b3["hi"]) == (0.0, 0.25, 0.75, 1.0)
    assert b0["mean_score"] == pytest.approx(0.08) and b0["frac_positive"] == 0.25  # (0.05+0.15+0.12+0)/4, 1 of 4
    assert b3["mean_score"] == pytest.approx(0.9625) and b3["frac_positive"] == 0.75  # (0.95+1+0.9+1)/4, 3 of 4
    assert (b1["mean_score"], b1["frac_positive"], b2["mean_score"], b2["frac_positive"]) == (0.25, 0.0, 0.5, 1.0)
    # ECE = 4/10·|0.25−0.08| + 1/10·|0−0.25| + 1/10·|1−0.5| + 4/10·|0.75−0.9625|
    assert cal["ece"] == pytest.approx(0.4 * 0.17 + 0.1 * 0.25 + 0.1 * 0.5 + 0.4 * 0.2125)


def test_calibration_edge_cases():
    perfect = calibration([0.0, 0.0, 1.0, 1.0], [0, 0, 1, 1], bins=10)
    assert perfect["ece"] == 0.0 and [b["count"] for b in perfect["bins"]] == [2] + [0] * 8 + [2]
    assert perfect["bins"][4] == {"lo": 0.4, "hi": 0.5, "count": 0, "mean_score": None, "frac_positive": None}
    assert calibration([], [], bins=3) == {"ece": None, "n": 0, "bins": calibration([], [], bins=3)["bins"]}
    assert calibration([0.7], [0.0], bins=1)["ece"] == pytest.approx(0.7)
    with pytest.raises(ValueError):
        calibration([0.5], [1, 0])
    with pytest.raises(ValueError):
        calibration([0.5], [1], bins=0)


def test_reliability_diagram_is_written(tmp_path):
    cal = calibration([0.1, 0.9, 0.8], [0, 1, 0], bins=5)
    path = reliability({"a": cal, "empty": calibration([], [], bins=5)}, tmp_path / "calibration.png")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the batched next-token reader ---------------------------------------------------------------------------------
def test_next_token_logprobs_equal_full_forwards_local():
    policy = spread_policy()
    prompts = [[TOK.bos_id, 5, 6], [TOK.bos_id]]
    completions = [[7, 8, 9, 10], [11, 12]]
    at = [[0, 2, 4], [1]]
    for rows in (policy.next_token_logprobs(prompts, completions, at),  # one padded batch
                 next_token_logprobs(lambda i, m: policy.model(i, attention_mask=m), prompts, completions, at,
                                     TOK.pad_id, "cpu", TOK.vocab_size, max_logits=1)):  # one sequence per chunk
        for p, c, js, row in zip(prompts, completions, at, rows):
            probs = full_forward_probs(policy, p + c)
            assert row.shape == (len(js), TOK.vocab_size)
            for j, r in zip(js, row):
                assert torch.allclose(r.double().exp(), probs[len(p) + j - 1], atol=1e-6)
    [default] = policy.next_token_logprobs([[TOK.bos_id, 5]], [[6, 7]])  # default: after the whole completion
    assert torch.allclose(default[0].double().exp(), full_forward_probs(policy, [TOK.bos_id, 5, 6, 7])[-1], atol=1e-6)
    with pytest.raises(ValueError):
        policy.next_token_logprobs([[TOK.bos_id]], [[5]], [[2]])


def test_next_token_logprobs_equal_full_forwards_transformers():
    model, tok = tiny_model("llama", seed=1)
    policy = TransformersPolicy(model, HFTokenizer(tok))
    prompts = policy.encode_prompts(["ab", "a longer prompt"])
    completions = [policy.tokenizer.encode(" cde"), policy.tokenizer.encode("x")]
    rows = policy.next_token_logprobs(prompts, completions, [[0, 3], [1]])
    for p, c, js, row in zip(prompts, completions, [[0, 3], [1]], rows):
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([p + c])).logits[0].double(), -1)
        for j, r in zip(js, row):
            assert torch.allclose(r.double().exp(), probs[len(p) + j - 1], atol=1e-5)


# -- the self-evaluation scorer ------------------------------------------------------------------------------------
def test_countdown_probe():
    probe = TASK.self_eval_probe
    assert probe(PROBLEM, "7*3=21 | 25 21\n") == ("7*3=21 | 25 21\n", (), ("back",))
    assert probe(PROBLEM, "7*3=21 | 25 21\n25+21=46 vs 46 no\n") == ("7*3=21 | 25 21\n25+21=46 vs 46 ", ("yes",),
                                                                      ("no",))
    assert probe(PROBLEM, "7*3=21 | 25") == ("7*3=21 | 25\n", (), ("back",))  # an unfinished line is ended
    head = "7*3=21 | 25 21\n25+21=46 vs 46 "
    assert probe(PROBLEM, head + "yes\ncheck 25+(7*3)=46 ok\nanswer 25+(7*3)\n") == (head, ("yes",), ("no",))
    assert probe(PROBLEM, "answer 46\n") == ("answer 46\n", (), ("back",))  # no final line to take a verdict from
    try_line = "try 25: need 21 71 - - - - | 3 7 -> 10 4 21 yes\n"  # a try line: its verdict, after what it checks
    assert probe(PROBLEM, try_line) == ("try 25: need 21 71 - - - - | 3 7 -> 10 4 21 ", ("yes",), ("no",))
    assert word_ids(TOK, ("yes",), ("no",)) == ([TOK.vocab["yes"]], [TOK.vocab["no"]])


def test_selfeval_scores_are_the_verdict_probabilities_of_a_full_forward():
    policy = spread_policy()
    prompt = policy.encode_prompts([PROBLEM.prompt])[0]
    ids = prompt + TOK.encode(TEXT)
    probs = full_forward_probs(policy, ids)  # (T, V)
    steps = TASK.steps(TEXT)
    assert len(steps) == 4
    end = [len(prompt) + len(TOK.encode("".join(steps[: i + 1]))) - 1 for i in range(4)]  # last token of step i
    verdict = len(prompt) + len(TOK.encode(steps[0] + "25+21=46 vs 46 ")) - 1  # the token before "yes"
    back, yes, no = TOK.vocab["back"], TOK.vocab["yes"], TOK.vocab["no"]
    p_yes, p_no = probs[verdict, yes].item(), probs[verdict, no].item()
    verdict_p = p_yes / (p_yes + p_no)  # check and answer restate the path: they take that verdict too
    expected = [1 - probs[end[0], back].item(), verdict_p, verdict_p, verdict_p]
    assert 0.05 < verdict_p < 0.95 and 0.05 < probs[end[0], back] < 0.95  # informative: a wrong position would show
    scorer = make_scorer("selfeval", TASK, policy)
    assert isinstance(scorer, SelfEvalScorer)
    [scores] = scorer([PROBLEM], [TEXT])
    assert scores == pytest.approx(expected, abs=1e-6)
    # one forward, charged: over prompt + completion up to the last point a probe reads (here the verdict of step 1)
    assert scorer.ledger.reward_tokens == verdict + 1
    assert scorer.ledger.reward_flops == pytest.approx(2.0 * policy.n_params * (verdict + 1))
    scorer([PROBLEM], [steps[0]])
    assert scorer.ledger.reward_tokens == verdict + 1 + end[0] + 1
    # recorded steps score the same as the text
    assert scorer([PROBLEM], [[Step(s) for s in steps]])[0] == pytest.approx(expected, abs=1e-6)
    # the outcome form: the verdict of the last final line
    outcome = SelfEvalOutcome(policy, TASK)
    assert outcome([PROBLEM, PROBLEM], [TEXT, ""]) == [pytest.approx(expected[1], abs=1e-6), None]
    assert outcome([PROBLEM], ["7*3=21 | 25 21\n"]) == [pytest.approx(expected[0], abs=1e-6)]


def test_one_score_per_step_on_search_traces_and_a_batch():
    policy = spread_policy()
    traces = TASK.traces(PROBLEM, style="search", n=6, seed=3)
    assert any("back" in t for t in traces) and max(len(TASK.steps(t)) for t in traces) >= 6
    scorer = SelfEvalScorer(policy, TASK, batch_size=4)  # two chunks
    scores = scorer([PROBLEM] * 6, traces)
    assert [len(s) for s in scores] == [len(TASK.steps(t)) for t in traces]
    assert all(0.0 <= v <= 1.0 for s in scores for v in s)
    alone = [SelfEvalScorer(policy, TASK)([PROBLEM], [t])[0] for t in traces]
    assert scores == [pytest.approx(a, abs=1e-5) for a in alone]  # padding and batching change nothing
    prompt = len(policy.encode_prompts([PROBLEM.prompt])[0])
    ends = [[len("".join(TASK.steps(t)[: i + 1])) for i in range(len(TASK.steps(t)))] for t in traces]
    read = [max(len(TASK.self_eval_probe(PROBLEM, t[:e])[0]) for e in es) for t, es in zip(traces, ends)]
    assert scorer.ledger.reward_tokens == sum(prompt + len(TOK.encode(t[:n])) for t, n in zip(traces, read))
    # steps as a search records them: a cut-off last step still gets its one score
    steps = [Step("7*3=21 | 25 21\n"), Step("25+2")]
    assert len(scorer([PROBLEM], [steps])[0]) == 2


def test_generic_probe_by_hand_on_a_transformers_policy():
    """A task without a probe (math): the question is appended after each step; with a byte tokenizer " yes"/" no"
    share their first token, so P(yes) reads the "y" token against "n"."""
    model, tok = tiny_model("llama", seed=2)
    policy = TransformersPolicy(model, HFTokenizer(tok))
    problem = Problem("m", "What is 2+3?\n", {"answer": "5"})
    text = "2+3 is 5.\n\nSo the answer is 5."
    steps = MathTask().steps(text)
    assert len(steps) == 2
    pos, neg = word_ids(policy.tokenizer, (" yes", "yes"), (" no", "no"))
    assert pos == policy.tokenizer.encode("y") and neg == policy.tokenizer.encode("n")
    scorer = make_scorer("selfeval", MathTask(), policy)
    scores = scorer([problem], [text])[0]
    prompt = policy.encode_prompts([problem.prompt])[0]
    expected, tokens = [], 0
    for i in range(2):
        ids = prompt + [t for s in steps[: i + 1] for t in policy.tokenizer.encode(s)]
        ids += policy.tokenizer.encode(QUESTION)
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([ids])).logits[0, -1].double(), -1)
        expected.append((probs[pos[0]] / (probs[pos[0]] + probs[neg[0]])).item())
        tokens += len(ids)
    assert scores == pytest.approx(expected, abs=1e-6)
    assert scorer.ledger.reward_tokens == tokens  # one pass per probe


@pytest.mark.parametrize("task", [TASK, MathTask()], ids=["countdown", "generic"])
def test_garbage_text_gets_scores_without_raising(task):
    policy = spread_policy()
    garbage = ["", "\n", "\n\n\n", "é☃\x00 <eos> 99999999 vs 46 yes", "back | 1 2\nvs yes\n" * 5, "answer",
               "12+=|| vs vs 4 no\n\n" + "x" * 300, "7*3=21 | 25 21\n25+21=46 vs 46 maybe\n"]
    scores = SelfEvalScorer(policy, task)([PROBLEM] * len(garbage), garbage)
    assert [len(s) for s in scores] == [len(task.steps(g)) for g in garbage]
    assert all(0.0 <= v <= 1.0 and not math.isnan(v) for s in scores for v in s)
    assert SelfEvalOutcome(policy, task)([PROBLEM] * len(garbage), garbage)[0] is None


def test_selfeval_is_a_loop_reward():
    rewards = round_rewards("selfeval", TASK)  # the scorer is built where the search runs, from that policy
    assert isinstance(rewards.process.build(spread_policy()), SelfEvalScorer)
    assert rewards.outcome([PROBLEM], [TEXT]) == [1.0]
    with pytest.raises(ValueError):
        SelfEvalScorer(None, TASK)


def test_selfeval_guides_beam_search_and_mcts_and_is_charged():
    """Searches hand the scorer lists of recorded `Step`s; its reward tokens land in the problems' ledgers."""
    from searchlearn.search.beam import BeamConfig, beam_search
    from searchlearn.search.budget import Budget
    from searchlearn.search.mcts import MCTSConfig, mcts

    policy, problems = stepping_policy(), TASK.problems("test", 2, seed=5)
    small = dict(step_tokens=6, max_new_tokens=24, max_steps=8)
    for run in (lambda s: beam_search(problems, policy, TASK, s, Budget(4), BeamConfig(width=2, **small)),
                lambda s: mcts(problems, policy, TASK, s, Budget(4), MCTSConfig(k=2, **small))):
        scorer = SelfEvalScorer(policy, TASK)
        results = run(scorer)
        assert len(results) == 2 and scorer.ledger.reward_tokens > 0
        assert sum(r.ledger.reward_tokens for r in results) == pytest.approx(scorer.ledger.reward_tokens)
