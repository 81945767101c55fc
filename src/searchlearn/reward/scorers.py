"""The process scorers by name: what `--scorer`, the sweep's `scorer` and the loop's `reward` choose from.

A name is `NAME` or `NAME:ARG` (`learned:runs/prm`); each entry builds a process reward (contracts.ProcessReward)
from the task, the policy and the argument. A new scorer is a file with its class plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable

from searchlearn.config import ConfigError
from searchlearn.contracts import ProcessReward
from searchlearn.registry import Registry
from searchlearn.reward.learned import LearnedScorer
from searchlearn.reward.montecarlo import MonteCarloScorer
from searchlearn.reward.process import ConfidenceScorer, GoldScorer, OutcomeAtTerminal
from searchlearn.reward.selfeval import SelfEvalScorer
from searchlearn.reward.verifiers import VerifierReward

ScorerBuilder = Callable[..., ProcessReward]  # (task, policy, arg: str | None) -> a process scorer


def _no_arg(name: str, arg: str | None) -> None:
    if arg:
        raise ConfigError(f"scorer {name!r} takes no argument, got {name}:{arg}")


def _gold(task, policy, arg):
    _no_arg("gold", arg)
    if not hasattr(task, "gold_step_values"):
        raise ConfigError(f"scorer 'gold' needs a task with exact process labels; {task.name!r} has none")
    return GoldScorer(task)


def _confidence(task, policy, arg):
    _no_arg("confidence", arg)
    return ConfidenceScorer(policy, task)


def _selfeval(task, policy, arg):
    _no_arg("selfeval", arg)
    return SelfEvalScorer(policy, task)


def _verifier(task, policy, arg):
    """The policy's confidence, with the verifier's verdict on a step that ends a solution: training-time search may
    use it (training problems have verifiers), test-time search may not."""
    _no_arg("verifier", arg)
    return OutcomeAtTerminal(ConfidenceScorer(policy, task), VerifierReward(task))


def _learned(task, policy, arg):
    if not arg:
        raise ConfigError("scorer 'learned' needs the reward model's directory: learned:DIR")
    return LearnedScorer.load(arg, task, device=getattr(policy, "device", "cpu"))


def _mc(task, policy, arg):
    if arg is not None and not (arg.isdigit() and int(arg) >= 1):
        raise ConfigError(f"scorer 'mc' takes the rollouts per step, a positive integer: mc:K, got mc:{arg}")
    return MonteCarloScorer(policy, task, int(arg or 4))


SCORERS: Registry[ScorerBuilder] = Registry("scorer", {
    "confidence": _confidence,  # exp(mean token logprob) of each step: the policy's own confidence
    "selfeval": _selfeval,  # the policy's own verdict on each step (reward/selfeval.py)
    "gold": _gold,  # Countdown's exact process labels: an oracle PRM
    "verifier": _verifier,  # confidence + the verifier at finished steps (training-time search)
    "learned": _learned,  # a reward model from `searchlearn reward train --out DIR`: learned:DIR
    "mc": _mc,  # Monte-Carlo values: the share of K policy rollouts from each step that succeed (mc:K, default 4)
})


def make_scorer(spec: str, task, policy=None) -> ProcessReward:
    """A process scorer from its name, `NAME` or `NAME:ARG` (e.g. "gold", "learned:runs/prm")."""
    name, _, arg = spec.partition(":")
    return SCORERS[name](task, policy, arg or None)
