"""Internal guidance by self-evaluation: the policy's own verdict on its steps, as a process and an outcome reward.

Self-evaluation (the "internal guidance" of the o1 roadmap; cf. Xie et al. 2023, "Self-Evaluation Guided Beam Search";
Kadavath et al. 2022, P(True)) is the probability the policy gives a positive verdict when probed after a prefix:

    score(step i) = P(positive | probe_i) / (P(positive | probe_i) + P(negative | probe_i))

read from ONE next-token distribution at the end of the probe text. A task supplies its probe with
`task.self_eval_probe(problem, prefix) -> (probe text, positive words, negative words)`; empty positive words mean
"any token but the negatives", score = 1 − P(negative). Countdown's probe is the policy's own next decision in its
trace format (the verdict "yes"/"no" of a final line, and of the last one for a check/answer line; else not writing
"back" next). A task without one gets
`generic_probe`: the prefix + "\\nIs every step so far correct? Answer yes or no:", P(yes) over yes + no.

Cost: a probe whose text is a prefix of the completion (all of Countdown's) is read from the same forward pass as the
other such probes of that completion, so a whole completion costs one pass over prompt + completion; any other probe
(the generic question) costs a pass of its own. Every token read is charged to `self.ledger` as reward tokens.
Scores are probabilities in [0, 1]; the scorers never raise on model text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import accumulate

import torch

from searchlearn.reward.process import Prefix, _check
from searchlearn.reward.verifiers import text_of
from searchlearn.types import Ledger, Problem

Probe = tuple[str, tuple[str, ...], tuple[str, ...]]  # (text to read, positive words, negative words)
QUESTION = "\nIs every step so far correct? Answer yes or no:"
NEUTRAL = 0.5  # the score of a probe whose words the tokenizer cannot tell apart


def generic_probe(problem: Problem, prefix: str) -> Probe:
    """The prompt probe for tasks without their own: ask, then read P(yes) against P(no)."""
    return prefix + QUESTION, (" yes", "yes"), (" no", "no")


def probe_of(task) -> Callable[[Problem, str], Probe]:
    return getattr(task, "self_eval_probe", None) or generic_probe


def word_ids(tokenizer, positive: Sequence[str], negative: Sequence[str]) -> tuple[list[int], list[int]]:
    """Token ids of each side's words: the spellings that are one token; where a side has none, the first token of
    each spelling, less the first tokens the other side shares (a byte tokenizer's " " starts " yes" and " no")."""
    def encode(words):
        return [ids for ids in (tokenizer.encode(w) for w in words) if ids]

    pos, neg = encode(positive), encode(negative)
    firsts = {id(side): {ids[0] for ids in side} for side in (pos, neg)}
    out = []
    for side, other in ((pos, neg), (neg, pos)):
        single = {ids[0] for ids in side if len(ids) == 1}
        out.append(sorted(single or firsts[id(side)] - firsts[id(other)]))
    return out[0], out[1]


def probe_score(logp: torch.Tensor, positive: Sequence[str], pos_ids: Sequence[int], neg_ids: Sequence[int]) -> float:
    """The verdict's probability from a next-token log-distribution (V,): P(pos)/(P(pos)+P(neg)), or 1 − P(neg) when
    the probe names no positive words; `NEUTRAL` when a side it needs has no tokens."""
    if not neg_ids or (positive and not pos_ids):
        return NEUTRAL
    neg = torch.logsumexp(logp[list(neg_ids)], 0).item()
    if not positive:
        return min(1.0, max(0.0, 1.0 - math.exp(neg)))
    pos = torch.logsumexp(logp[list(pos_ids)], 0).item()
    return 1.0 / (1.0 + math.exp(min(50.0, neg - pos)))  # sigmoid(pos − neg)


class _Probing:
    """Shared machinery: probes → token sequences → one batched `policy.next_token_logprobs` call per chunk."""

    def __init__(self, policy, task, batch_size: int = 32):
        if policy is None or task is None:
            raise ValueError("self-evaluation needs a policy and a task")
        self.policy, self.task, self.batch_size = policy, task, batch_size
        self.probe = probe_of(task)
        self.ledger = Ledger()
        self._words: dict[tuple, tuple[list[int], list[int]]] = {}

    def _ids(self, positive, negative) -> tuple[list[int], list[int]]:
        key = (tuple(positive), tuple(negative))
        if key not in self._words:
            self._words[key] = word_ids(self.policy.tokenizer, positive, negative)
        return self._words[key]

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]],
              want: Sequence[Sequence[int]]) -> list[list[float]]:
        """The self-evaluation after step i of each solution, for each i in want[k] (in that order)."""
        out: list[list[float]] = []
        for start in range(0, len(problems), self.batch_size):
            stop = start + self.batch_size
            out += self._score_chunk(problems[start:stop], steps[start:stop], want[start:stop])
        return out

    @torch.no_grad()
    def _score_chunk(self, problems, steps, want) -> list[list[float]]:
        tok = self.policy.tokenizer
        prompts = self.policy.encode_prompts([p.prompt for p in problems])
        out = [[NEUTRAL] * len(w) for w in want]
        requests: list[tuple[list[int], list[int], list[int]]] = []  # (prompt, completion, positions)
        slots: list[list[tuple[int, int, Probe]]] = []  # per request: (solution, index in want, probe)
        for k, (problem, pieces, wanted) in enumerate(zip(problems, steps, want)):
            text = "".join(pieces)
            ends = list(accumulate(map(len, pieces)))
            probes = [self.probe(problem, text[: ends[i]]) for i in wanted]
            inline = [s for s, pr in enumerate(probes) if text.startswith(pr[0])]
            if inline:  # one sequence, cut at every step end and every probe point, read at the probe points
                last = max(len(probes[s][0]) for s in inline)
                cuts = sorted({len(probes[s][0]) for s in inline} | {e for e in ends if e <= last})
                ids, at_cut, prev = [], {0: 0}, 0
                for c in cuts:
                    ids += tok.encode(text[prev:c]) if c > prev else []
                    at_cut[c], prev = len(ids), c
                requests.append((prompts[k], ids, [at_cut[len(probes[s][0])] for s in inline]))
                slots.append([(k, s, probes[s]) for s in inline])
            for s, pr in enumerate(probes):
                if s in inline:
                    continue
                base = text[: ends[wanted[s]]]
                if pr[0].startswith(base):  # the prefix (tokenized step by step) + the probe's own words
                    ids = [t for piece in pieces[: wanted[s] + 1] for t in tok.encode(piece)]
                    ids += tok.encode(pr[0][len(base):])
                else:
                    ids = tok.encode(pr[0])
                requests.append((prompts[k], ids, [len(ids)]))
                slots.append([(k, s, pr)])
        keep = [r for r, (p, c, at) in enumerate(requests) if len(p) + min(at) >= 1]  # a probe needs a token to read
        if not keep:
            return out
        rows = self.policy.next_token_logprobs([requests[r][0] for r in keep], [requests[r][1] for r in keep],
                                               [requests[r][2] for r in keep])
        tokens = sum(len(requests[r][0]) + len(requests[r][1]) for r in keep)
        self.ledger.charge_reward(tokens, self.policy.n_params)
        for r, logp in zip(keep, rows):  # logp (K, V)
            for row, (k, s, (_, positive, negative)) in zip(logp, slots[r]):
                pos_ids, neg_ids = self._ids(positive, negative)
                out[k][s] = probe_score(row, positive, pos_ids, neg_ids)
        return out


def _steps_of(task, prefix: Prefix) -> list[str]:
    steps = task.steps(prefix) if isinstance(prefix, str) else [s.text for s in prefix]
    return [s for s in steps if s]


class SelfEvalScorer(_Probing):
    """Process contract: `(problems, prefixes) -> list[list[float]]`, the policy's self-evaluation after every step.

    A prefix is a string (split with `task.steps`) or a list of `Step`s (scored as given)."""

    def __call__(self, problems: Sequence[Problem], prefixes: Sequence[Prefix]) -> list[list[float]]:
        _check(problems, prefixes)
        steps = [_steps_of(self.task, x) for x in prefixes]
        return self.score(list(problems), steps, [list(range(len(s))) for s in steps])


class SelfEvalOutcome(_Probing):
    """Outcome contract: `(problems, completions) -> list[float | None]`, the policy's verdict on the whole
    completion: its self-evaluation at the last step whose probe is a verdict (names positive words: Countdown's last
    "vs T yes/no" line, every step of the generic question), else at the last step; None for a completion with no
    steps. Only that one probe is run."""

    def __call__(self, problems: Sequence[Problem], completions: Sequence) -> list[float | None]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        steps = [_steps_of(self.task, text_of(c)) for c in completions]
        want = []
        for problem, pieces in zip(problems, steps):
            ends = list(accumulate(map(len, pieces)))
            text = "".join(pieces)
            verdicts = [i for i in range(len(pieces)) if self.probe(problem, text[: ends[i]])[1]]
            want.append([verdicts[-1] if verdicts else len(pieces) - 1] if pieces else [])
        scores = self.score(list(problems), steps, want)
        return [s[0] if s else None for s in scores]
