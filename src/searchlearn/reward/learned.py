"""A trained reward model behind the reward contracts (docs/DESIGN.md), so any searcher or learner can use it.

`LearnedScorer(problems, prefixes) -> list[list[float]]`: the model's score at the end of every step (process
contract; a PRM/value/PPM reads each step, an ORM's per-step scores are its P(correct) of each prefix).
`.outcome(problems, completions) -> list[float | None]`: one number per solution, the step scores aggregated by
`last`, `min` or `prod` (Lightman et al. 2023 use prod/min; Snell et al. 2024 last); None for a completion with no
steps. The scorer never raises on model text: unknown characters become the tokenizer's <unk>.
Every token it reads is charged to `self.ledger` as reward tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from searchlearn.policy.policy import pad_batch
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.reward.aggregate import aggregate
from searchlearn.reward.models import RewardModel, encode_solution, encode_steps
from searchlearn.reward.process import Prefix, _check, prefix_text
from searchlearn.reward.verifiers import text_of
from searchlearn.types import Ledger, Problem


class LearnedScorer:
    """Process and outcome scores from a `RewardModel` (scores in [0, 1])."""

    def __init__(self, model: RewardModel, tokenizer, task, how: str = "last", batch_size: int = 64,
                 max_length: int | None = None):
        aggregate([], how)  # reject an unknown aggregate now
        self.model, self.tokenizer, self.task, self.how = model.eval(), tokenizer, task, how
        self.batch_size = batch_size
        self.max_length = max_length or model.config.max_position_embeddings
        self.ledger = Ledger()

    @classmethod
    def load(cls, directory: str | Path, task, how: str | None = None, device: str = "cpu") -> LearnedScorer:
        """A scorer from a reward-model directory (`searchlearn reward train --out`), with its saved aggregate."""
        model, meta = RewardModel.load(directory)
        return cls(model.to(device), TaskTokenizer.load(directory), task, how or meta.get("aggregate", "last"))

    @torch.no_grad()
    def __call__(self, problems: Sequence[Problem], prefixes: Sequence[Prefix]) -> list[list[float]]:
        _check(problems, prefixes)
        items = []
        for p, x in zip(problems, prefixes):
            steps = [s.text for s in x] if not isinstance(x, str) else self.task.steps(x)
            ids, ends, start = encode_solution(self.tokenizer, p.prompt, [s for s in steps if s])
            keep = [e for e in ends if e < self.max_length]  # steps past the context: scored as the last that fits
            items.append((ids[: self.max_length], keep, len(ends), start))
        out: list[list[float]] = []
        device = next(self.model.parameters()).device
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            nonempty = [it for it in chunk if it[2]]
            scores = []
            if nonempty:
                ids, mask = pad_batch([it[0] for it in nonempty], self.tokenizer.pad_id, device)
                starts = torch.tensor([it[3] for it in nonempty], device=device)
                probs = self.model.probability(self.model(ids, mask, starts)).cpu()  # (B, T)
                self.ledger.charge_reward(int(mask.sum()), self.model.n_params)
                scores = iter(probs.tolist())
            for ids_, keep, n_steps, _ in chunk:
                if not n_steps:
                    out.append([])
                    continue
                row = next(scores)
                vals = [row[e] for e in keep] or [row[len(ids_) - 1]]
                out.append(vals + [vals[-1]] * (n_steps - len(vals)))
        return out

    def outcome(self, problems: Sequence[Problem], completions: Sequence) -> list[float | None]:
        """One score per completion (outcome contract): its step scores aggregated by `self.how`; None if no steps."""
        texts = [text_of(c) for c in completions]
        return [aggregate(s, self.how) if s else None for s in self(problems, texts)]

    def value(self, problems: Sequence[Problem], prefixes: Sequence[Prefix]) -> list[float]:
        """Φ of each prefix (its last step's score; the prompt alone is scored at its last token)."""
        out = []
        for p, x, s in zip(problems, prefixes, self(problems, [prefix_text(x) for x in prefixes])):
            out.append(s[-1] if s else self._prompt_value(p))
        return out

    @torch.no_grad()
    def _prompt_value(self, problem: Problem) -> float:
        ids, _ = encode_steps(self.tokenizer, problem.prompt, [])
        device = next(self.model.parameters()).device
        raw = self.model(torch.tensor([ids], device=device), starts=torch.tensor([len(ids)], device=device))
        self.ledger.charge_reward(len(ids), self.model.n_params)
        return float(self.model.probability(raw)[0, -1])
