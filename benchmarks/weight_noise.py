"""How fragile a Countdown checkpoint is: greedy pass@1 on held-out problems after a random ±s sign perturbation of
every weight, for each scale s (the size of the change an optimizer step of learning rate s makes per weight).

    python benchmarks/weight_noise.py runs/init0_tool_c5_long/policy --scales 0,1.4e-4,4e-4,1e-3 --checks tool \\
        --corrections 0.5
"""

from __future__ import annotations

import argparse
import json

import torch

from searchlearn.loop.rounds import load_local
from searchlearn.reward.verifiers import VerifierReward
from searchlearn.search.best_of_n import sample
from searchlearn.tasks.countdown import CountdownConfig, CountdownTask
from searchlearn.types import SamplingParams


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--scales", default="0,1e-4,1e-3")
    p.add_argument("--problems", type=int, default=1000)
    p.add_argument("--checks", default="need")
    p.add_argument("--corrections", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    task = CountdownTask(CountdownConfig(checks=args.checks, corrections=args.corrections))
    batch = task.problems("test", args.problems, seed=1)
    for scale in (float(s) for s in args.scales.split(",")):
        policy = load_local(args.model)
        g = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            for w in policy.model.parameters():
                w.add_(scale * (torch.randint(0, 2, w.shape, generator=g) * 2 - 1).to(w.dtype))
        results = sample(batch, policy, task, SamplingParams(n=1, temperature=0.0, max_new_tokens=400, seed=0),
                         VerifierReward(task))
        print(json.dumps({"scale": scale, "pass@1": sum(r.trajectories[0].reward for r in results) / len(batch)}),
              flush=True)


if __name__ == "__main__":
    main()
