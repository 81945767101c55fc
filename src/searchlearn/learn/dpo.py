"""Preference learning from search: DPO / IPO on whole solutions and on sibling steps of a search tree.

Whole solutions (Rafailov et al. 2023): for one problem, chosen = a verifier-correct sample, rejected = an incorrect
one. Step level (Step-DPO, Lai et al. 2024; Xie et al. 2024, "Monte Carlo Tree Search Boosts Reasoning via Iterative
Preference Learning"): two children of the same tree node, the one with the higher value (MCTS Q, a verifier outcome,
or a PRM score) chosen; the shared prefix — the prompt plus the steps down to the parent — is the prompt.

The reference log-probabilities are computed once, before the first update, from the frozen reference (by default
the model as it is then), and travel in the checkpoint, so no reference model is held during training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Callable, Sequence

import torch

from searchlearn import progress
from searchlearn.distributed.ddp import all_sum, all_sum_dict, my_rows, rank_world
from searchlearn.distributed.shard import learner_ranks
from searchlearn.distributed.weights import to_arrays
from searchlearn.learn.data import batch_indices
from searchlearn.learn.losses import dpo_loss
from searchlearn.learn.rollout import make_batch, token_logprobs
from searchlearn.learn.trainer import TrainConfig, Trainer
from searchlearn.policy.policy import encode_prompts
from searchlearn.types import Node, SearchResult, SearchTree

# (prompt_ids, chosen_ids, rejected_ids[, chosen_mask, rejected_mask]): the masks (per continuation token, None = all
# trained) come with pairs from episodes with tools, whose observations are never trained on
TokenPair = tuple


@dataclass
class PreferencePair:
    """Two continuations of one context, the first preferred."""

    prompt: str  # the shared context: the problem prompt, plus the shared steps for a step-level pair
    chosen: str  # the preferred continuation
    rejected: str  # the dispreferred continuation
    chosen_ends: bool = True  # the chosen text ends the solution (EOS follows it)
    rejected_ends: bool = True  # the rejected text ends the solution
    problem_id: str = ""
    margin: float = 0.0  # value(chosen) − value(rejected), for filtering and weighting
    tokens: EpisodeTokens | None = None  # an environment's episodes: their own tokens and masks (never re-tokenized)


@dataclass
class EpisodeTokens:
    """A pair's tokens as an episode with tools sampled them: the problem's prompt (encoded as the policy encodes it),
    the shared context after it (a step pair's path), and each continuation's ids with its mask (False = an
    environment's observation, not trained)."""

    problem_prompt: str
    context_ids: list[int]
    chosen_ids: list[int]
    chosen_mask: list[bool] | None
    rejected_ids: list[int]
    rejected_mask: list[bool] | None


def solution_pairs(results: Sequence[SearchResult], max_pairs_per_problem: int = 4, seed: int = 0
                   ) -> list[PreferencePair]:
    """Whole-solution pairs: per problem, distinct correct (reward ≥ 1) × distinct incorrect (reward < 1) samples.

    Up to `max_pairs_per_problem` pairs, drawn without repeats from the shuffled cross product (seeded per problem).
    Trajectories with no reward are skipped. A problem with no correct or no incorrect sample yields nothing.
    """
    pairs = []
    for result in results:
        by_text = {t.completion: t for t in result.trajectories if t.reward is not None}
        good = [text for text, t in by_text.items() if t.reward >= 1]
        bad = [text for text, t in by_text.items() if t.reward < 1]
        if not good or not bad:
            continue
        prompt = result.trajectories[0].prompt
        cross = [(g, b) for g in good for b in bad]
        random.Random(f"{seed}:{result.problem_id}").shuffle(cross)
        for g, b in cross[:max_pairs_per_problem]:
            tg, tb = by_text[g], by_text[b]
            tokens = (EpisodeTokens(prompt, [], list(tg.token_ids), tg.mask, list(tb.token_ids), tb.mask)
                      if tg.mask is not None or tb.mask is not None else None)
            pairs.append(PreferencePair(prompt, g, b, True, True, result.problem_id, 1.0, tokens))
    return pairs


def node_value(node: Node) -> float | None:
    """A node's value for ranking siblings: its mean backed-up value Q if visited, else its step score, else None."""
    if node.visits:
        return node.value
    return node.step.score


def step_pairs(tree: SearchTree, prompt: str, value: Callable[[Node], float | None] = node_value,
               min_margin: float = 0.0, max_pairs_per_node: int | None = None) -> list[PreferencePair]:
    """Step-level pairs from sibling steps: children a, b of one node with value(a) − value(b) > min_margin.

    The pair's prompt is `prompt` + the text of the path down to the parent (the shared prefix); chosen and rejected
    are the two steps' texts, ending the solution when the child is terminal. Per node, pairs are taken in order of
    decreasing margin, at most `max_pairs_per_node`. Siblings with the same text or no value are skipped.
    """
    pairs = []
    episodes = any(n.mask is not None for n in tree.nodes)  # steps with a tool's answer: keep their own tokens
    for index, node in enumerate(tree.nodes):
        scored = [(value(tree.nodes[c]), c) for c in node.children]
        scored = [(v, c) for v, c in scored if v is not None]
        candidates = []
        for (va, a), (vb, b) in combinations(scored, 2):
            if va < vb:
                (va, a), (vb, b) = (vb, b), (va, a)
            na, nb = tree.nodes[a], tree.nodes[b]
            if va - vb > min_margin and na.step.text != nb.step.text:
                candidates.append((va - vb, a, b))
        candidates.sort(key=lambda x: (-x[0], x[1], x[2]))
        prefix = prompt + (tree.text(index) if index else "")
        for margin, a, b in candidates[:max_pairs_per_node]:
            na, nb = tree.nodes[a], tree.nodes[b]
            tokens = (EpisodeTokens(prompt, tree.token_ids(index) if index else [], na.token_ids, na.mask,
                                    nb.token_ids, nb.mask) if episodes else None)
            pairs.append(PreferencePair(prefix, na.step.text, nb.step.text, na.terminal, nb.terminal,
                                        tree.problem_id, margin, tokens))
    return pairs


def tokenize_pairs(pairs: Sequence[PreferencePair], tokenizer) -> list[TokenPair]:
    """(prompt_ids, BOS first as the policy adds it; chosen_ids; rejected_ids), EOS appended to a continuation that
    ends the solution. A pair from episodes with tools keeps its sampled ids (the past is never re-tokenized), and
    then every pair of the list carries its two masks as well (None for a text pair: all trained)."""
    prompts = encode_prompts(tokenizer, [p.tokens.problem_prompt if p.tokens else p.prompt for p in pairs])
    texts = [p for p in pairs if p.tokens is None]  # only their continuations are encoded
    encoded = iter(zip(tokenizer.encode_batch([p.chosen for p in texts]),
                       tokenizer.encode_batch([p.rejected for p in texts])))
    eos = [tokenizer.eos_id]

    def ended(mask: list[bool] | None, ends: bool) -> list[bool] | None:
        return None if mask is None else list(mask) + [True] * ends

    out = []
    for p, pr in zip(pairs, prompts):
        if p.tokens is None:
            c, r = next(encoded)
            out.append((pr, c + eos * p.chosen_ends, r + eos * p.rejected_ends, None, None))
        else:
            t = p.tokens
            out.append((pr + list(t.context_ids), list(t.chosen_ids) + eos * p.chosen_ends,
                        list(t.rejected_ids) + eos * p.rejected_ends, ended(t.chosen_mask, p.chosen_ends),
                        ended(t.rejected_mask, p.rejected_ends)))
    return out if len(texts) < len(pairs) else [pair[:3] for pair in out]


def trained_tokens(pair: TokenPair, which: int) -> int:
    """Tokens of the pair's chosen (which = 1) or rejected (2) continuation that the loss reads."""
    mask = pair[which + 2] if len(pair) > 3 else None
    return len(pair[which]) if mask is None else sum(mask)


def pair_logprobs(model: torch.nn.Module, pairs: Sequence[TokenPair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log π(chosen | prompt) and log π(rejected | prompt) over the trained tokens, (B,) each, from one
    forward over 2B rows."""
    prompts = [p[0] for p in pairs] * 2
    completions = [p[1] for p in pairs] + [p[2] for p in pairs]
    masks = [p[3] if len(p) > 3 else None for p in pairs] + [p[4] if len(p) > 3 else None for p in pairs]
    batch = make_batch(prompts, completions, pad_id, masks)
    sums = (token_logprobs(model, batch) * batch.action_mask).sum(-1)  # (2B,)
    return sums[: len(pairs)], sums[len(pairs):]


@torch.no_grad()
def reference_logprobs(model: torch.nn.Module, pairs: Sequence[TokenPair], pad_id: int, chunk: int = 32
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """`pair_logprobs` of the frozen reference for every pair, (P,) each."""
    chosen, rejected = [], []
    for start in range(0, len(pairs), chunk):
        c, r = pair_logprobs(model, pairs[start : start + chunk], pad_id)
        chosen.append(c)
        rejected.append(r)
    return torch.cat(chosen), torch.cat(rejected)


@dataclass
class DPOConfig(TrainConfig):
    steps: int = 200  # optimizer steps
    batch_size: int = 16  # pairs per step
    lr: float = 1e-5  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr
    warmup_steps: int = 10  # linear warm-up from 0
    log_every: int = 10  # steps between logged records
    beta: float = 0.1  # DPO β (IPO's τ): strength of the pull towards the reference
    sft_coef: float = 0.0  # weight of an NLL term on the chosen tokens (RPO, Pang et al. 2024); 0 = pure DPO

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1 or self.beta <= 0 or self.sft_coef < 0:
            raise ValueError("batch_size >= 1, beta > 0 and sft_coef >= 0")


def train_dpo(
    model: torch.nn.Module,
    pairs: Sequence[TokenPair],
    cfg: DPOConfig,
    pad_id: int,
    loss_fn: Callable = dpo_loss,
    reference: torch.nn.Module | None = None,
    ckpt_dir: str | Path | None = None,
    tokenizer=None,
    log: Callable[[dict], None] = lambda record: None,
    stop_after: int | None = None,
    name: str = "dpo",
) -> dict:
    """Train `model` in place on preference pairs (whole-solution or step-level) for cfg.steps steps.

    loss_fn: `dpo_loss`, `ipo_loss`, or a partial of either (e.g. label smoothing). reference: the frozen π_ref
    (default: `model` itself before the first update); its log-probabilities are computed once and kept in the
    checkpoint's meta. Resumes from `ckpt_dir` when a checkpoint is there.
    Returns {"loss": last logged loss, "accuracy": last logged pair accuracy, "steps", "seconds"}.
    """
    if (world := learner_ranks()) > 1:
        from searchlearn.distributed.launch import adopt, data_parallel  # Ray is imported only when it is used

        progress.say(f"{name}: {cfg.steps} steps data-parallel on {world} ranks")
        return adopt(model, data_parallel(_dpo_rank, world, model, list(pairs), cfg, pad_id, loss_fn,
                                          reference, ckpt_dir, tokenizer, stop_after, name), log)
    if not pairs:
        raise ValueError(f"{name}: no preference pairs")
    if cfg.batch_size < rank_world()[1]:
        raise ValueError(f"{name}: batch_size {cfg.batch_size} is smaller than the {rank_world()[1]} ranks")
    trainer = Trainer(model, cfg, name, ckpt_dir, tokenizer, log, stop_after)
    meta = trainer.resume()
    if meta is None:
        was_training = model.training
        frozen = reference if reference is not None else model
        ref_chosen, ref_rejected = reference_logprobs(frozen.eval(), pairs, pad_id)  # (P,) each
        model.train(was_training)
        trainer.meta = {"ref_chosen": ref_chosen.tolist(), "ref_rejected": ref_rejected.tolist()}
    ref_chosen, ref_rejected = torch.tensor(trainer.meta["ref_chosen"]), torch.tensor(trainer.meta["ref_rejected"])

    def step_fn(step: int) -> dict:
        batch = batch_indices(len(pairs), step, cfg)
        index = batch[my_rows(len(batch))]  # data parallel: this rank's pairs (all of them in one process)
        share = len(index) / len(batch)  # the pair-mean loss, rescaled so that the ranks' gradients sum to the batch's
        chosen, rejected = pair_logprobs(model, [pairs[i] for i in index], pad_id)  # (b,) each
        loss, stats = loss_fn(chosen, rejected, ref_chosen[index], ref_rejected[index], beta=cfg.beta)
        loss = loss * share
        if cfg.sft_coef:
            nll = -chosen.sum() / max(1.0, all_sum(sum(trained_tokens(pairs[i], 1) for i in index)))
            loss = loss + cfg.sft_coef * nll
            stats["nll_chosen"] = nll.item() / share
        grad_norm = trainer.update(loss)
        stats = all_sum_dict({k: float(v) * share for k, v in stats.items()})  # pair-weighted means over the ranks
        trained = all_sum(sum(trained_tokens(pairs[i], 1) + trained_tokens(pairs[i], 2) for i in index))
        return {**{f"learn/{k}": v for k, v in stats.items()}, "learn/grad_norm": grad_norm,
                "count/train_tokens": int(trained)}

    model.train()
    result = trainer.run(step_fn)
    last = result["last"]
    return {"loss": last.get("learn/loss"), "accuracy": last.get("learn/accuracy"), "steps": result["steps"],
            "seconds": result["seconds"]}


def _dpo_rank(model, pairs, cfg, pad_id, loss_fn, reference, ckpt_dir, tokenizer, stop_after, name):
    """One data-parallel rank of `train_dpo`: (result, its records, rank 0's weights as arrays)."""
    records: list[dict] = []
    out = train_dpo(model, pairs, cfg, pad_id, loss_fn, reference, ckpt_dir, tokenizer, records.append, stop_after,
                    name)
    return out, records, to_arrays(model) if rank_world()[0] == 0 else None
