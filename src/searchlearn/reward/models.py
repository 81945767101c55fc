"""Learned reward models: a scalar head on the policy backbone, trained on labels that search produced.

  * ORM — P(correct | solution): binary cross-entropy at the solution's last token on verifier labels (Cobbe et al.
    2021; Lightman et al. 2023).
  * PRM — a score at every step end, BCE on Monte-Carlo labels, hard or soft (Math-Shepherd, Wang et al. 2024).
  * value — V(prefix) at every step end, squared error on soft MC labels (the critic of PPO, the value of MCTS).
  * PPM — process preference model: Bradley–Terry −log σ(r⁺ − r⁻) on sibling steps chosen by Q margin (rStar-Math,
    Guan et al. 2025).
  * implicit — a PRM trained on outcome labels only (Yuan et al. 2024, "Free Process Rewards without Process
    Labels"; PRIME, Cui et al. 2025): the outcome reward is parameterized as r = β log πφ(y|x)/πref(y|x) and trained
    with BCE, and then q_t = β Σ_{i≤t} log πφ(y_i|y_<i)/πref(y_i|y_<i) is the value after token t: σ(q) at each step
    end is the step's score. πφ starts as the policy, πref is the policy, frozen (`implicit.ImplicitBody`).

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
from searchlearn.reward.implicit import ImplicitBody
from searchlearn.reward.labels import q_margin_pairs

WEIGHTS = "reward_model.safetensors"
META = "reward_config.json"


# -- the model -----------------------------------------------------------------------------------------------------
class RewardModel(nn.Module):
    """(B, T) ids -> (B, T) raw head outputs r_t; `probability` maps them to scores (σ, or the value itself)."""

    def __init__(self, policy_model: LlamaForCausalLM, kind: str = "prm", share_backbone: bool = False,
                 beta: float = 0.05):
        super().__init__()
        KINDS[kind]  # an unknown kind is an error that lists the valid ones
        self.kind = kind
        self.body = ImplicitBody(policy_model, beta) if kind == "implicit" else ValueModel(policy_model,
                                                                                            share_backbone)
        self.config: LlamaConfig = policy_model.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                starts: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) raw outputs; `starts` (B,), where each completion begins, matters to the implicit PRM only (its
        q sums the log-ratios of the completion's tokens)."""
        if self.kind == "implicit":
            return self.body(input_ids, attention_mask, starts)
        return self.body(input_ids, attention_mask)  # (B, T)

    def probability(self, raw: torch.Tensor) -> torch.Tensor:
        """Score in [0, 1]: σ(r) for orm/prm/ppm (a PPM's σ is monotone in its BT reward), V clamped for value."""
        return KINDS[self.kind].probability(raw)

    @property
    def n_params(self) -> int:
        """Non-embedding parameters read per token (the implicit PRM runs πφ and πref)."""
        return self.body.net.num_parameters(exclude_embeddings=True) * (2 if self.kind == "implicit" else 1)

    def save(self, directory: str | Path, tokenizer=None, extra: dict | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()
                 if not (self.kind == "implicit" and self.config.tie_word_embeddings and k.endswith("lm_head.weight"))}
        save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})  # a tied LM head: once, as embedding
        (directory / CONFIG_NAME).write_text(json.dumps(self.config.to_hf_dict(), indent=2))
        beta = {"beta": self.body.beta} if self.kind == "implicit" else {}
        (directory / META).write_text(json.dumps({"kind": self.kind, **beta, **(extra or {})}, indent=1))
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
            model = cls(shell, meta["kind"], beta=meta.get("beta", 0.05))
        result = model.load_state_dict(load_file(str(directory / WEIGHTS)), assign=True, strict=False)
        tied = {k for k in result.missing_keys if model.kind == "implicit" and k.endswith("lm_head.weight")}
        if set(result.missing_keys) - tied or result.unexpected_keys:
            raise ValueError(f"{directory / WEIGHTS}: missing {sorted(set(result.missing_keys) - tied)[:3]}, "
                             f"unexpected {result.unexpected_keys[:3]}")
        if model.kind == "implicit":  # πφ and πref: LMs whose head may be tied to the embedding
            model.body.net.tie_weights()
            model.body.ref.tie_weights()
        return model.eval(), meta


# -- examples: token ids with the positions that carry a label -----------------------------------------------------
@dataclass
class Example:
    """`ids` = prompt + completion tokens; the head at `positions[j]` (a step's last token) is trained on targets[j];
    the completion starts at `start`."""

    ids: list[int]
    positions: list[int]
    targets: list[float]
    start: int = 1


def encode_solution(tokenizer, prompt: str, steps: Sequence[str]) -> tuple[list[int], list[int], int]:
    """(ids, ends, start): the prompt's ids (BOS first) then each step's, the index of each step's last token, and
    the index where the completion begins (the prompt's length)."""
    ids = encode_prompts(tokenizer, [prompt])[0]
    start, ends = len(ids), []
    for step in steps:
        ids = ids + tokenizer.encode(step)
        ends.append(len(ids) - 1)
    return ids, ends, start


def encode_steps(tokenizer, prompt: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
    """(ids, ends) of `encode_solution`."""
    return encode_solution(tokenizer, prompt, steps)[:2]


def make_examples(tokenizer, labels, kind: str, label: str = "soft", max_length: int | None = None) -> list[Example]:
    """Examples from `StepLabels` for kind "orm" (outcome at the last step end), "prm" or "value" (every step end,
    `label` = "soft" or "hard"). Solutions longer than `max_length` tokens are cut at the last step that fits."""
    if kind not in ("orm", "prm", "value") or label not in ("soft", "hard"):
        raise ValueError(f"examples for orm/prm/value with soft/hard labels, got {kind!r}/{label!r}")
    out = []
    for r in labels:
        if not r.steps:
            continue
        ids, ends, start = encode_solution(tokenizer, r.problem.prompt, r.steps)
        targets = [r.outcome] if kind == "orm" else list(r.soft if label == "soft" else r.hard)
        positions = [ends[-1]] if kind == "orm" else ends
        if kind != "orm" and r.keep is not None:  # consensus filtering left some steps out
            positions = [p for p, k in zip(positions, r.keep) if k]
            targets = [t for t, k in zip(targets, r.keep) if k]
            if not positions:
                continue
        if max_length is not None:
            keep = [j for j, p in enumerate(positions) if p < max_length]
            if not keep:
                continue
            positions, targets = [positions[j] for j in keep], [targets[j] for j in keep]
            ids = ids[: positions[-1] + 1]
        out.append(Example(ids, positions, targets, start))
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
    raw = model(ids, mask, torch.tensor([e.start for e in examples], device=device))  # (B, T)
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
    outcome_only: bool = False  # trains on the verifier's outcome alone: solutions need no Monte-Carlo rollouts


KINDS: Registry[HeadKind] = Registry("reward model kind", {
    "orm": HeadKind(_labelled("orm"), _pointwise(bce_loss), torch.sigmoid, True),  # outcome at the last step
    "prm": HeadKind(_labelled("prm"), _pointwise(bce_loss), torch.sigmoid),  # MC label at every step end
    "value": HeadKind(_labelled("value"), _pointwise(mse_loss), lambda raw: raw.clamp(0.0, 1.0)),  # V regression
    "ppm": HeadKind(_sibling_pairs, _pairwise, torch.sigmoid),  # Bradley–Terry on siblings; σ is monotone in r
    "implicit": HeadKind(_labelled("orm"), _pointwise(bce_loss), torch.sigmoid, True),  # outcome BCE, β log πφ/πref
})


@dataclass
class RewardTrainConfig(TrainConfig):
    steps: int = 300  # optimizer steps
    batch_size: int = 32  # solutions (or pairs) per step
    lr: float = 3e-4  # peak learning rate (constant after warm-up)
    warmup_steps: int = 10  # linear warm-up
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas
    log_every: int = 20  # steps between logged records
    backbone: str = "full"  # what trains under the head: full | frozen (the head only) | last:K (the last K blocks)
    eval_every: int = 10  # with held-out examples: steps between held-out losses (the best state is kept)
    beta: float = 0.05  # the implicit PRM's β in r = β log πφ/πref (Yuan et al. 2024 use 0.05)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("batch_size and eval_every must be >= 1")
        trained_blocks(self.backbone, 1 << 30)  # an unknown setting is an error now, not after labelling


def trained_blocks(backbone: str, layers: int) -> int:
    """How many of the last decoder blocks train under `backbone`: full → all, frozen → 0, last:K → K."""
    if backbone == "full":
        return layers
    if backbone == "frozen":
        return 0
    kind, _, k = backbone.partition(":")
    if kind != "last" or not k.isdigit() or not 1 <= int(k) <= layers:
        raise ValueError(f"backbone must be full, frozen or last:K with 1 <= K <= {layers} blocks, got {backbone!r}")
    return int(k)


def freeze(model: RewardModel, backbone: str) -> None:
    """Set which weights train: the head always; the final norm and the last K blocks for last:K (all for full);
    nothing else. Frozen weights keep the policy's features, so a few hundred labels cannot overwrite them."""
    decoder = model.body.net.model
    k = trained_blocks(backbone, len(decoder.layers))
    for p in decoder.parameters():
        p.requires_grad_(backbone == "full")
    if 0 < k:
        for block in decoder.layers[len(decoder.layers) - k :]:
            block.requires_grad_(True)
        decoder.norm.requires_grad_(True)
    model.body.net.lm_head.requires_grad_(True)


def loss_of(model: RewardModel, batch: Sequence, pad_id: int) -> tuple[torch.Tensor, dict]:
    """The kind's loss on a batch of Examples (orm/prm/value) or of (chosen, rejected) pairs (ppm)."""
    return KINDS[model.kind].loss(model, batch, pad_id)


@torch.no_grad()
def held_out_loss(model: RewardModel, data: Sequence, pad_id: int, batch_size: int = 64) -> float:
    """The kind's loss on `data`, averaged over batches weighted by their size."""
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(data), batch_size):
        chunk = data[start : start + batch_size]
        total += float(loss_of(model, chunk, pad_id)[0]) * len(chunk)
    model.train(was_training)
    return total / len(data)


def train_reward(model: RewardModel, data: Sequence, cfg: RewardTrainConfig, pad_id: int,
                 log: Callable[[dict], None] = lambda record: None, name: str = "reward",
                 held_out: Sequence = ()) -> dict:
    """Train `model` in place on `data` (Examples, or pairs for ppm) for cfg.steps AdamW steps, the weights
    `cfg.backbone` leaves trainable (`freeze`); batches are seeded draws without replacement within each epoch.
    With `held_out` examples, their loss is measured every `cfg.eval_every` steps and the model ends with the
    weights of the lowest (early stopping). Returns {"loss", "steps", "config", "held_out_loss", "best_step"}."""
    if not data:
        raise ValueError(f"{name}: no training data")
    trainable = {p: p.requires_grad for p in model.parameters()}
    freeze(model, cfg.backbone)
    trainer = Trainer(model, cfg, name, log=log)
    rng, order = random.Random(cfg.seed), []
    trained = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    best = {"loss": held_out_loss(model, held_out, pad_id) if held_out else None, "step": 0,
            "state": {k: p.detach().clone() for k, p in trained} if held_out else None}

    def step_fn(step: int) -> dict:
        nonlocal order
        if len(order) < cfg.batch_size:
            extra = list(range(len(data)))
            rng.shuffle(extra)
            order += extra
        batch, order = [data[i] for i in order[: cfg.batch_size]], order[cfg.batch_size :]
        loss, stats = loss_of(model, batch, pad_id)
        trainer.update(loss)
        out = {f"reward/{k}": v for k, v in stats.items()}
        if held_out and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            out["reward/held_out_loss"] = value = held_out_loss(model, held_out, pad_id)
            if value < best["loss"]:
                best.update(loss=value, step=step + 1, state={k: p.detach().clone() for k, p in trained})
        return out

    model.train()
    result = trainer.run(step_fn)
    if held_out:  # early stopping: the weights of the lowest held-out loss
        with torch.no_grad():
            for k, p in trained:
                p.copy_(best["state"][k])
    for p, flag in trainable.items():
        p.requires_grad_(flag)
    return {"loss": result["last"].get("reward/loss"), "steps": result["steps"], "config": asdict(cfg),
            "held_out_loss": best["loss"], "best_step": best["step"] if held_out else result["steps"]}
