"""Expert iteration (Anthony et al. 2017; STaR, Zelikman et al. 2022; ReST-EM, Singh et al. 2023).

One round: a training-time search produces solutions (best-of-N samples, beam, MCTS, revision: the "search"), the
verifier keeps the correct ones (the "expert"), and SFT behaviour-clones them. The loop (loop.py) runs the rounds;
this is the filter in the middle.
"""

from __future__ import annotations

from collections.abc import Sequence

from searchlearn.policy.policy import encode_prompts
from searchlearn.types import SearchResult


def keep_shortest(results: Sequence[SearchResult], keep_per_problem: int) -> list:
    """Per problem, the `keep_per_problem` shortest distinct verifier-correct trajectories (`Trajectory.correct`, set
    by the outcome reward), shortest first: the filter that keeps expert iteration from learning detours."""
    kept = []
    for r in results:
        distinct = {t.completion: t for t in r.trajectories if t.correct}.values()
        kept += sorted(distinct, key=lambda t: len(t.completion))[:keep_per_problem]
    return kept


def expert_examples(results: Sequence[SearchResult], tokenizer, keep_per_problem: int) -> list[list[list[int]]]:
    """`keep_shortest`'s trajectories as [prompt ids, completion ids + EOS] (+ the trained mask of an episode, whose
    observations stay out of the loss). The prompt is the one the policy saw (a
    revision prompt for revisions), so the policy learns to produce the solution from there."""
    kept = keep_shortest(results, keep_per_problem)
    if not kept:
        return []
    prompts = encode_prompts(tokenizer, [t.prompt for t in kept])
    texts = iter(tokenizer.encode_batch([t.completion for t in kept if t.mask is None]))
    eos = tokenizer.eos_id
    # an episode keeps its own ids (never re-tokenized) and leaves the environment's observations out of the loss
    return [[p, next(texts) + [eos]] if t.mask is None else [p, list(t.token_ids) + [eos], list(t.mask) + [True]]
            for p, t in zip(prompts, kept)]
