"""Learned reward models: a scalar head on the policy backbone, trained on labels that search produced.

  * ORM — P(correct | solution): binary cross-entropy at the solution's last token on verifier labels (Cobbe et al.
    2021; Lightman et al. 2023).
  * PRM — a score at every step end, BCE on Monte-Carlo labels, hard or soft (Math-Shepherd, Wang et al. 2024).
  * value — V(prefix) at every step end, squared error on soft MC labels (the critic of PPO, the value of MCTS).
  * PPM — process preference model: Bradley–Terry −log σ(r⁺ − r⁻) on sibling steps chosen by Q margin (rStar-Math,
    Guan et al. 2025).

The network is `learn.ppo.ValueModel` — the policy's decoder (a copy, or shared) under an nn.Linear(D, 1) head —
wrapped with its kind, its save/load and the step-end bookkeeping. Losses are pure (tensors in, loss + stats out).
`LearnedScorer` (in `reward/learned.py`) puts a trained model behind the process and outcome reward contracts.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from searchlearn.learn.losses import bce_loss, bradley_terry_loss, mse_loss
from searchlearn.learn.trainer import TrainConfig, Trainer
from searchlearn.policy.heads import ValueModel
from searchlearn.policy.model import CONFIG_NAME, LlamaConfig, LlamaForCausalLM
from searchlearn.policy.policy import encode_prompts, pad_batch
from searchlearn.registry import Registry
from searchlearn.reward.labels import q_margin_pairs

WEIGHTS = "reward_model.safetensors"
META = "reward_config.json"


# -- the model -----------------------------------------------------------------------------------------------------
class RewardModel(nn.Module):
    """(B, T) ids -> (B, T) raw head outputs r_t; `probability` maps them to scores (σ, or the value itself)."""

    def __init__(self, policy_model: LlamaForCausalLM, kind: str = "prm", share_backbone: bool = False):
        super().__init__()
        KINDS[kind]  # an unknown kind is an error that lists the valid ones
        self.kind = kind
        self.body = ValueModel(policy_model, share_backbone)
        self.config: LlamaConfig = policy_model.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(input_ids, attention_mask)  # (B, T)

    def probability(self, raw: torch.Tensor) -> torch.Tensor:
        """Score in [0, 1]: σ(r) for orm/prm/ppm (a PPM's σ is monotone in its BT reward), V clamped for value."""
        return KINDS[self.kind].probability(raw)

    @property
    def n_params(self) -> int:
        return self.body.net.num_parameters(exclude_embeddings=True)

    def save(self, directory: str | Path, tokenizer=None, extra: dict | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
        (directory / CONFIG_NAME).write_text(json.dumps(self.config.to_hf_dict(), indent=2))
        (directory / META).write_text(json.dumps({"kind": self.kind, **(extra or {})}, indent=1))
        if tokenizer is not None:
            tokenizer.save(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> tuple[RewardModel, dict]:
        """(model, meta) from a directory written by `save`."""
        directory = Path(directory)
        if not (directory / META).is_file():
            raise FileNotFoundError(f"{directory}: no {META} — not a reward model directory")
        meta = json.loads((directory / META).read_text())
        config = LlamaConfig.from_dict(json.loads((directory / CONFIG_NAME).read_text()))
        with torch.device("meta"):
            shell = LlamaForCausalLM(config)
            model = cls(shell, meta["kind"])
        model.load_state_dict(load_file(str(directory / WEIGHTS)), assign=True)
        return model.eval(), meta


# -- examples: token ids with the positions that carry a label -----------------------------------------------------
@dataclass
class Example:
    """`ids` = prompt + completion tokens; the head at `positions[j]` (a step's last token) is trained on targets[j]."""

    ids: list[int]
    positions: list[int]
    targets: list[float]


def encode_steps(tokenizer, prompt: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
    """(ids, ends): the prompt's ids (BOS first) then each step's, and the index of each step's last token."""
    ids = encode_prompts(tokenizer, [prompt])[0]
    ends = []
    for step in steps:
        ids = ids + tokenizer.encode(step)
        ends.append(len(ids) - 1)
    return ids, ends


def make_examples(tokenizer, labels, kind: str, label: str = "soft", max_length: int | None = None) -> list[Example]:
    """Examples from `StepLabels` for kind "orm" (outcome at the last step end), "prm" or "value" (every step end,
    `label` = "soft" or "hard"). Solutions longer than `max_length` tokens are cut at the last step that fits."""
    if kind not in ("orm", "prm", "value") or label not in ("soft", "hard"):
        raise ValueError(f"examples for orm/prm/value with soft/hard labels, got {kind!r}/{label!r}")
    out = []
    for r in labels:
        if not r.steps:
            continue
        ids, ends = encode_steps(tokenizer, r.problem.prompt, r.steps)
        targets = [r.outcome] if kind == "orm" else list(r.soft if label == "soft" else r.hard)
        positions = [ends[-1]] if kind == "orm" else ends
        if max_length is not None:
            keep = [j for j, p in enumerate(positions) if p < max_length]
            if not keep:
                continue
            positions, targets = [positions[j] for j in keep], [targets[j] for j in keep]
            ids = ids[: positions[-1] + 1]
        out.append(Example(ids, positions, targets))
    return out


def make_pair_examples(tokenizer, pairs) -> list[tuple[Example, Example]]:
    """(chosen, rejected) examples from `labels.Pair`s: each scored at its last step's end."""
    out = []
    for pair in pairs:
        items = []
        for step in (pair.chosen, pair.rejected):
            ids, ends = encode_steps(tokenizer, pair.problem.prompt, list(pair.prefix) + [step])
            items.append(Example(ids, [ends[-1]], [1.0]))
        out.append((items[0], items[1]))
    return out


def head_at(model: RewardModel, examples: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(raw head outputs, targets), flattened over every labelled position of the batch, (N,) each."""
    device = next(model.parameters()).device
    ids, mask = pad_batch([e.ids for e in examples], pad_id, device)
    raw = model(ids, mask)  # (B, T)
    rows = torch.tensor([i for i, e in enumerate(examples) for _ in e.positions], device=device)
    cols = torch.tensor([p for e in examples for p in e.positions], device=device)
    targets = torch.tensor([t for e in examples for t in e.targets], device=device)
    return raw[rows, cols], targets


# -- kinds and training ----------------------------------------------------------------------------------------------
def _pointwise(loss_fn: Callable) -> Callable:
    def loss(model: RewardModel, batch: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, dict]:
        raw, targets = head_at(model, batch, pad_id)
        return loss_fn(raw, targets)
    return loss


def _pairwise(model: RewardModel, batch: Sequence[tuple[Example, Example]], pad_id: int) -> tuple[torch.Tensor, dict]:
    r_pos, _ = head_at(model, [c for c, _ in batch], pad_id)
    r_neg, _ = head_at(model, [r for _, r in batch], pad_id)
    return bradley_terry_loss(r_pos, r_neg)


def _labelled(kind: str) -> Callable:
    def data(tokenizer, labels, label: str, margin: float, max_length: int | None) -> list[Example]:
        return make_examples(tokenizer, labels, kind, label, max_length=max_length)
    return data


def _sibling_pairs(tokenizer, labels, label: str, margin: float, max_length: int | None) -> list:
    return make_pair_examples(tokenizer, q_margin_pairs(labels, margin, label))


@dataclass(frozen=True)
class HeadKind:
    """What makes a kind of reward model: its training data from MC-labelled solutions, its loss on a batch, and how
    a raw head output becomes a score in [0, 1]."""

    data: Callable  # (tokenizer, StepLabels, label "soft" | "hard", Q margin, max_length) -> Examples or pairs
    loss: Callable  # (model, batch of Examples or (chosen, rejected) pairs, pad_id) -> (loss, stats)
    probability: Callable[[torch.Tensor], torch.Tensor]  # raw head outputs -> scores in [0, 1]


KINDS: Registry[HeadKind] = Registry("reward model kind", {
    "orm": HeadKind(_labelled("orm"), _pointwise(bce_loss), torch.sigmoid),  # outcome at the last step
    "prm": HeadKind(_labelled("prm"), _pointwise(bce_loss), torch.sigmoid),  # MC label at every step end
    "value": HeadKind(_labelled("value"), _pointwise(mse_loss), lambda raw: raw.clamp(0.0, 1.0)),  # V regression
    "ppm": HeadKind(_sibling_pairs, _pairwise, torch.sigmoid),  # Bradley–Terry on siblings; σ is monotone in r
})


@dataclass
class RewardTrainConfig(TrainConfig):
    steps: int = 300  # optimizer steps
    batch_size: int = 32  # solutions (or pairs) per step
    lr: float = 3e-4  # peak learning rate (constant after warm-up)
    warmup_steps: int = 10  # linear warm-up
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas
    log_every: int = 20  # steps between logged records

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


def loss_of(model: RewardModel, batch: Sequence, pad_id: int) -> tuple[torch.Tensor, dict]:
    """The kind's loss on a batch of Examples (orm/prm/value) or of (chosen, rejected) pairs (ppm)."""
    return KINDS[model.kind].loss(model, batch, pad_id)


def train_reward(model: RewardModel, data: Sequence, cfg: RewardTrainConfig, pad_id: int,
                 log: Callable[[dict], None] = lambda record: None, name: str = "reward") -> dict:
    """Train `model` in place on `data` (Examples, or pairs for ppm) for cfg.steps AdamW steps; batches are seeded
    draws without replacement within each epoch. Returns {"loss", "steps", "config"}."""
    if not data:
        raise ValueError(f"{name}: no training data")
    trainer = Trainer(model, cfg, name, log=log)
    rng, order = random.Random(cfg.seed), []

    def step_fn(step: int) -> dict:
        nonlocal order
        if len(order) < cfg.batch_size:
            extra = list(range(len(data)))
            rng.shuffle(extra)
            order += extra
        batch, order = [data[i] for i in order[: cfg.batch_size]], order[cfg.batch_size :]
        loss, stats = loss_of(model, batch, pad_id)
        trainer.update(loss)
        return {f"reward/{k}": v for k, v in stats.items()}

    model.train()
    result = trainer.run(step_fn)
    return {"loss": result["last"].get("reward/loss"), "steps": result["steps"], "config": asdict(cfg)}
