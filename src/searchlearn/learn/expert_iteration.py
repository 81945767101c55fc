"""Expert iteration (Anthony et al. 2017; STaR, Zelikman et al. 2022; ReST-EM, Singh et al. 2023).

One round: sample K solutions per training problem (the "search"), keep those the verifier accepts (the "expert"),
behaviour-clone them with SFT. Repeated for R rounds, each on fresh problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from searchlearn.learn.sft import Example, SFTConfig
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.best_of_n import sample
from searchlearn.types import Ledger, Problem, SamplingParams


@dataclass
class ExpertIterationConfig:
    rounds: int = 2  # R rounds of sample → filter → SFT
    problems_per_round: int = 1024  # fresh training problems per round
    samples_per_problem: int = 8  # K samples per problem
    temperature: float = 1.0  # sampling temperature of the training-time search
    max_new_tokens: int = 192  # completion cap while sampling
    keep_per_problem: int = 2  # distinct correct completions kept per problem
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(steps=300, lr=1e-3, warmup_steps=20))

    def __post_init__(self) -> None:
        if self.rounds < 0 or self.problems_per_round < 1 or self.samples_per_problem < 1 or self.keep_per_problem < 1:
            raise ValueError("rounds >= 0; problems_per_round, samples_per_problem, keep_per_problem >= 1")


def collect(policy, task, problems: list[Problem], cfg: ExpertIterationConfig, seed: int
            ) -> tuple[list[Example], dict]:
    """Sample K per problem; return SFT examples of verifier-correct, EOS-terminated completions, and stats."""
    params = SamplingParams(n=cfg.samples_per_problem, temperature=cfg.temperature,
                            max_new_tokens=cfg.max_new_tokens, seed=seed)
    results = sample(problems, policy, task, params, VerifierReward(task))
    prompts = policy.encode_prompts([p.prompt for p in problems])
    eos = policy.tokenizer.eos_id
    examples, solved, correct, ledger = [], 0, 0, Ledger()
    for prompt_ids, result in zip(prompts, results):
        ledger.add(result.ledger)
        kept: set[str] = set()
        for t in result.trajectories:
            if t.reward and t.reward >= 1.0:
                correct += 1
                if t.completion not in kept and len(kept) < cfg.keep_per_problem:
                    kept.add(t.completion)
                    examples.append((prompt_ids, list(t.token_ids) + [eos]))
        solved += bool(kept)
    n = len(problems) * cfg.samples_per_problem
    stats = {"search/train_solve_rate": solved / len(problems), "search/train_sample_accuracy": correct / n,
             "learn/examples": len(examples), "ledger/generated_tokens": ledger.generated_tokens}
    return examples, stats
