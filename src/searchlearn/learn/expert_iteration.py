"""Expert iteration (Anthony et al. 2017; STaR, Zelikman et al. 2022; ReST-EM, Singh et al. 2023).

One round: a training-time search produces solutions (best-of-N samples, beam, MCTS, revision: the "search"), the
verifier keeps the correct ones (the "expert"), and SFT behaviour-clones them. The loop (loop.py) runs the rounds;
this is the filter in the middle.
"""

from __future__ import annotations

from collections.abc import Sequence

from searchlearn.policy.policy import encode_prompts
from searchlearn.types import SearchResult


def expert_examples(results: Sequence[SearchResult], tokenizer, keep_per_problem: int) -> list[list[list[int]]]:
    """Up to `keep_per_problem` distinct verifier-correct trajectories per problem (`Trajectory.correct`, set by the
    outcome reward), as [prompt ids, completion ids + EOS]. The prompt is the one the policy saw (a revision prompt for
    revisions), so the policy learns to produce the solution from there."""
    kept = [t for r in results
            for t in list({t.completion: t for t in r.trajectories if t.correct}.values())[:keep_per_problem]]
    if not kept:
        return []
    prompts = encode_prompts(tokenizer, [t.prompt for t in kept])
    completions = tokenizer.encode_batch([t.completion for t in kept])
    return [[p, c + [tokenizer.eos_id]] for p, c in zip(prompts, completions)]
