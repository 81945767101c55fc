"""GRPO wall-clock: searchlearn's `train_grpo` against TRL's `GRPOTrainer`, same start, same config. Not a test.

Both trainers start from the same weights (one Hugging Face checkpoint written by `export_hf` and loaded by each
side), see the same Countdown training problems in the same order (step s gets the N problems that searchlearn's
seeded stream gives it; TRL reads them from an unshuffled dataset laid out in that order), sample G completions of at
most `--max-new-tokens` tokens each at temperature 1 (top-p 1, no top-k), score them with the same verifier, and take
one AdamW step per RL step (betas (0.9, 0.99), no weight decay, grad-norm clip 1, ε-clip 0.2, β = 0: no reference
model, μ = 1: π_old is the sampling policy, lr constant after an optional `--warmup`). They run one after the other in
one process with the same torch thread count. Measured per step: wall-clock (everything the trainer does in that
step), split into sampling+reward and update, and the mean verifier reward of that step's N·G samples (drawn before
the update). Setup (loading the model, building the trainer) is reported apart.

    python benchmarks/grpo_vs_trl.py [--threads 1] [--model runs/demo/policy --k 3 --max-new-tokens 192]

Needs TRL (`pip install -e .[bench]` with torch pinned, or `make bench-trl`). Without --model, a 0.1M-parameter
policy is SFT-initialized here (~10 s on an idle core) on solver traces of 2-number Countdown (`--k 2`), where the
sampled reward starts near 0.6 (greedy: 0.8), so GRPO has room to move it. With --model: any checkpoint the project
loads with its own engine (a searchlearn policy directory, or Llama/Qwen2/Mistral HF weights).

What is held equal, and what is not:
  - prompt ids: the exported tokenizer does not add a BOS by itself, so TRL's prompts carry the BOS as text
    ("<bos>3 7 25 -> 46\\n"); the script checks that TRL's tokenization then equals searchlearn's, token for token.
  - loss: `--loss grpo` is TRL's loss_type="grpo" with scale_rewards="group" (sequence mean of token terms, std-scaled
    group advantages, ε = 1e-4 in both); `--loss dr_grpo` is loss_type="dr_grpo" with scale_rewards="none" (TRL
    divides by max_completion_length, searchlearn by max_new_tokens + 1, the EOS being an action).
  - optimizer: TRL is handed searchlearn's (torch's AdamW; TRL would pick the fused one) and its lr schedule.
  - TRL defaults changed to match searchlearn: gradient checkpointing off (TRL turns it on), bf16 off.
  - searchlearn skips the optimizer step when every group has equal rewards (all advantages 0); TRL steps Adam anyway
    (on stale momentum). TRL also computes per-token entropies (for logging) in every loss forward.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from searchlearn.learn.data import problem_indices
from searchlearn.learn.grpo import GRPOConfig, recipe, train_grpo
from searchlearn.learn.sft import SFTConfig, train_sft
from searchlearn.learn.trainer import TrainConfig, learning_rate
from searchlearn.policy.hf import export_hf, load_policy
from searchlearn.policy.model import LlamaConfig, LlamaForCausalLM
from searchlearn.policy.policy import LocalPolicy, encode_prompts
from searchlearn.policy.tokenizer import TaskTokenizer
from searchlearn.reward.verifiers import TRLReward, VerifierReward
from searchlearn.tasks.countdown import CountdownConfig, CountdownTask


# -- the initial policy ---------------------------------------------------------------------------------------------
def build_policy(task: CountdownTask, sft_steps: int, seed: int) -> LocalPolicy:
    """A ~0.1M-parameter Llama-style policy, SFT-initialized on the solver's shortest-path traces (as the demo does)."""
    tokenizer = TaskTokenizer(task.words, max_number=task.config.max_intermediate, digits=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=384, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id))
    problems = task.problems("train", 3000, seed=seed)
    rng = random.Random(seed)
    traces = [task.trace(p, rng) for p in problems]
    prompts, completions = (tokenizer.encode_batch([p.prompt for p in problems]), tokenizer.encode_batch(traces))
    examples = [([tokenizer.bos_id] + p, c + [tokenizer.eos_id]) for p, c in zip(prompts, completions)]
    train_sft(model, examples, SFTConfig(steps=sft_steps, batch_size=32, lr=3e-3, warmup_steps=10,
                                         checkpoint_every=0, seed=seed), tokenizer.pad_id)
    return LocalPolicy(model.eval(), tokenizer)


# -- the two runs ---------------------------------------------------------------------------------------------------
def run_searchlearn(hf_dir: Path, pool, task, args) -> dict:
    t_setup = time.perf_counter()
    policy = load_policy(hf_dir, backend="native")
    cfg = GRPOConfig(steps=args.steps, prompts_per_step=args.prompts, group_size=args.group, temperature=1.0,
                     top_p=1.0, max_new_tokens=args.max_new_tokens, epochs=1, minibatch_size=0, lr=args.lr,
                     min_lr_ratio=1.0, warmup_steps=args.warmup, weight_decay=0.0, betas=(0.9, 0.99), grad_clip=1.0,
                     beta=0.0, seed=args.seed)
    parts = recipe(args.loss, cfg)
    rewards, stamps, extra = [], [], {"rollout_s": 0.0, "update_s": 0.0, "skipped_updates": 0}

    def log(record: dict) -> None:
        stamps.append(time.perf_counter())
        rewards.append(record["learn/reward"])
        extra["rollout_s"] += record["time/rollout_s"]
        extra["update_s"] += record["time/update_s"]
        extra["skipped_updates"] += record.get("learn/updates", 0) == 0

    setup = time.perf_counter() - t_setup
    t0 = time.perf_counter()
    train_grpo(policy, pool, cfg, VerifierReward(task), parts.advantage_fn, parts.loss_fn, log=log, name="searchlearn")
    return {"setup_s": setup, "step_s": _diffs(t0, stamps), "reward": rewards, **extra}


def run_trl(hf_dir: Path, pool, task, args, out_dir: Path, prefix: str) -> dict:
    try:
        import transformers
        from datasets import Dataset
        from trl import GRPOConfig as TRLConfig
        from trl import GRPOTrainer
    except ImportError as e:
        raise SystemExit(f"TRL is not installed ({e}); `pip install -e .[bench]` or `make bench-trl`") from e
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # TRL reads transformers' deprecated names

    t_setup = time.perf_counter()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    stream = [pool[i] for step in range(args.steps) for i in problem_indices(len(pool), step, args.prompts, args.seed)]
    dataset = Dataset.from_list([{"prompt": prefix + p.prompt, "problem_id": p.id} for p in stream])
    config = TRLConfig(
        output_dir=str(out_dir), max_steps=args.steps, per_device_train_batch_size=args.prompts * args.group,
        gradient_accumulation_steps=1, num_generations=args.group, max_completion_length=args.max_new_tokens,
        temperature=1.0, top_p=1.0, top_k=0, num_iterations=1, epsilon=0.2, beta=0.0, loss_type=args.loss,
        scale_rewards="group" if args.loss == "grpo" else "none", learning_rate=args.lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.99,
        max_grad_norm=1.0, use_vllm=False, use_cpu=True, bf16=False, fp16=False, shuffle_dataset=False,
        seed=args.seed, logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
        log_completions=False, dataloader_num_workers=0,
        # TRL turns gradient checkpointing on by default; transformers 5 renamed it activation_checkpointing
        **{"activation_checkpointing" if "activation_checkpointing" in TRLConfig.__dataclass_fields__
           else "gradient_checkpointing": False})
    reward_fn = TRLReward(VerifierReward(task), pool, key="problem_id", strip_prefix=prefix)
    stamps, rewards = [], []

    class Clock(transformers.TrainerCallback):
        def on_train_begin(self, *a, **k):
            stamps.clear()
            stamps.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

        def on_log(self, _args, _state, _control, logs=None, **k):
            if logs and "reward" in logs:
                rewards.append(float(logs["reward"]))

    # searchlearn's optimizer and schedule, handed to TRL: torch's AdamW (TRL would pick the fused variant), and
    # searchlearn's warm-up (step s at lr·(s+1)/W; transformers' warm-up starts at 0 and lags one step)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    unit = TrainConfig(steps=args.steps, lr=1.0, warmup_steps=args.warmup, min_lr_ratio=1.0)  # the schedule's factor
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate(s, unit))
    trainer = GRPOTrainer(model=model, reward_funcs=[reward_fn], args=config, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[Clock()], optimizers=(optimizer, schedule))
    trainer.remove_callback(transformers.PrinterCallback)  # TRL's per-step log dicts on stdout
    sampling = [0.0]  # seconds in TRL's rollout phase: generate, decode, reward, advantages
    rollout = trainer._generate_and_score_completions

    def timed_rollout(inputs):
        t = time.perf_counter()
        out = rollout(inputs)
        sampling[0] += time.perf_counter() - t
        return out

    trainer._generate_and_score_completions = timed_rollout
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    assert not getattr(unwrapped, "is_activation_checkpointing", getattr(unwrapped, "is_gradient_checkpointing", 0))
    setup = time.perf_counter() - t_setup
    trainer.train()
    step_s = _diffs(stamps[0], stamps[1:])
    return {"setup_s": setup, "step_s": step_s, "reward": rewards, "rollout_s": sampling[0],
            "update_s": sum(step_s) - sampling[0]}


def _diffs(t0: float, stamps: list[float]) -> list[float]:
    return [b - a for a, b in zip([t0] + stamps[:-1], stamps)]


# -- checks that the two sides start equal --------------------------------------------------------------------------
def check_same_start(hf_dir: Path, pool) -> tuple[str, str]:
    """Same weights and the same prompt token ids on both sides. Returns a one-line statement and the text prefix TRL's
    prompts need for that (the BOS as text when the exported tokenizer does not add it itself); raises otherwise."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    ours = load_policy(hf_dir, backend="native")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    mine = ours.model.state_dict()
    for name, tensor in theirs.state_dict().items():
        if name in mine and not torch.equal(mine[name], tensor):
            raise AssertionError(f"weights differ at {name}")
    prompts = [p.prompt for p in pool]
    want = encode_prompts(ours.tokenizer, prompts)
    with torch.no_grad():
        ids = torch.tensor(want[:1])
        gap = (ours.model(ids) - theirs(ids).logits).abs().max().item()  # (1, T, V)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    for prefix in ("", tokenizer.bos_token or ""):
        if [list(x) for x in tokenizer(text=[prefix + p for p in prompts])["input_ids"]] == want:
            break
    else:
        raise AssertionError("TRL's prompt ids differ from searchlearn's, with or without the BOS as text")
    how = f"the BOS written as text ({prefix!r}: the exported tokenizer adds none itself)" if prefix else "plain text"
    return (f"same weights ({ours.model.num_parameters() / 1e6:.2f}M params, max logit gap {gap:.1e}); TRL's prompt "
            f"ids equal searchlearn's on all {len(prompts)} prompts, with {how}"), prefix


# -- report ---------------------------------------------------------------------------------------------------------
def summarize(run: dict, target: float, window: int, last: int) -> dict:
    steps, r = run["step_s"], run["reward"]
    cum = [sum(steps[: i + 1]) for i in range(len(steps))]
    reached = next((i for i in range(window - 1, len(r)) if sum(r[i - window + 1 : i + 1]) / window >= target), None)
    return {"steps": len(steps), "setup_s": run["setup_s"], "total_s": sum(steps),
            "mean_step_s": statistics.fmean(steps), "median_step_s": statistics.median(steps),
            "rollout_step_s": run["rollout_s"] / len(steps), "update_step_s": run["update_s"] / len(steps),
            "first_reward": statistics.fmean(r[:last]), "last_reward": statistics.fmean(r[-last:]),
            "steps_to_target": None if reached is None else reached + 1,
            "time_to_target_s": None if reached is None else cum[reached]}


def print_table(ours: dict, trl: dict | None, args) -> None:
    def fmt(v, spec):
        return "—" if v is None else format(v, spec)

    rows = [("steps", "steps", "d"), ("setup s", "setup_s", ".2f"), ("s/step, mean", "mean_step_s", ".3f"),
            ("s/step, median", "median_step_s", ".3f"), ("  sampling+reward s/step", "rollout_step_s", ".3f"),
            ("  update s/step", "update_step_s", ".3f"), ("total s", "total_s", ".1f"),
            (f"reward, first {args.last}", "first_reward", ".3f"), (f"reward, last {args.last}", "last_reward", ".3f"),
            (f"steps to {args.target_reward}", "steps_to_target", "d"),
            (f"time to {args.target_reward} (s)", "time_to_target_s", ".1f")]
    print(f"\n{'':26} {'searchlearn':>12} {'TRL':>12} {'TRL/searchlearn':>16}")
    for label, key, spec in rows:
        a, b = ours.get(key), trl.get(key) if trl else None
        ratio = f"{b / a:.2f}x" if key.endswith("_s") and key != "setup_s" and a and b is not None else ""
        print(f"{label:26} {fmt(a, spec):>12} {fmt(b, spec):>12} {ratio:>16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="initial policy (searchlearn or HF checkpoint dir); "
                        "default: SFT-initialize a tiny one here (e.g. --model runs/demo/policy --k 3)")
    parser.add_argument("--k", type=int, default=None, help="Countdown input numbers (default 2, or 3 with --model)")
    parser.add_argument("--init-steps", type=int, default=300, help="SFT steps of the built initial policy")
    parser.add_argument("--steps", type=int, default=60, help="RL steps on each side")
    parser.add_argument("--prompts", type=int, default=16, help="N problems per step")
    parser.add_argument("--group", type=int, default=8, help="G samples per problem")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="completion cap (TRL max_completion_length)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=0, help="linear lr warm-up steps, then constant")
    parser.add_argument("--loss", choices=("grpo", "dr_grpo"), default="grpo")
    parser.add_argument("--problems", type=int, default=1024, help="training problem pool")
    parser.add_argument("--target-reward", type=float, default=0.65, help="mean reward for the time-to-reward row")
    parser.add_argument("--window", type=int, default=10, help="steps in the moving mean that must reach the target")
    parser.add_argument("--last", type=int, default=10, help="steps averaged in the first/last reward rows")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, both sides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("searchlearn", "trl"), default=None, help="run one side only")
    parser.add_argument("--json", default=None, help="write per-step times and rewards of both sides here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    k = args.k or (3 if args.model else 2)
    task = CountdownTask(CountdownConfig(k=k, style="optimal"))
    pool = task.problems("train", args.problems, seed=args.seed + 1000)

    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if args.model:
            policy = load_policy(args.model, backend="native")
        else:
            policy = build_policy(task, args.init_steps, args.seed)
        hf_dir = export_hf(policy, out_dir=Path(tmp) / "init")
        print(f"initial policy: {args.model or f'built here ({args.init_steps} SFT steps)'}, "
              f"{time.perf_counter() - t0:.1f} s; exported to a temporary HF checkpoint")
        statement, prefix = check_same_start(hf_dir, pool)
        print(statement)
        print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}; "
              f"Countdown k={k}, {args.steps} steps × {args.prompts} problems × {args.group} samples, "
              f"≤{args.max_new_tokens} new tokens, lr {args.lr}, loss {args.loss}", flush=True)

        results = {}
        if args.only in (None, "searchlearn"):
            results["searchlearn"] = run_searchlearn(hf_dir, pool, task, args)
            r = results["searchlearn"]
            print(f"searchlearn: {sum(r['step_s']):.1f} s (sampling {r['rollout_s']:.1f} s, update {r['update_s']:.1f}"
                  f" s, {r['skipped_updates']} steps without a learning signal skipped)", flush=True)
        if args.only in (None, "trl"):
            import trl

            results["trl"] = run_trl(hf_dir, pool, task, args, Path(tmp) / "trl", prefix)
            r = results["trl"]
            print(f"TRL {trl.__version__}: {sum(r['step_s']):.1f} s (sampling {r['rollout_s']:.1f} s, update "
                  f"{r['update_s']:.1f} s)", flush=True)
            assert torch.get_num_threads() == args.threads, "TRL changed the torch thread count"

    summaries = {name: summarize(r, args.target_reward, args.window, args.last) for name, r in results.items()}
    if "searchlearn" in summaries:
        print_table(summaries["searchlearn"], summaries.get("trl"), args)
    else:
        print(json.dumps(summaries["trl"], indent=1))
    print(f"\nmean reward per {args.window} steps (the same problems at the same step on both sides):")
    for name, r in results.items():
        chunks = [statistics.fmean(r["reward"][i : i + args.window]) for i in range(0, len(r["reward"]), args.window)]
        print(f"{name:>12} " + " ".join(f"{x:.3f}" for x in chunks))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": results, "summary": summaries}, indent=1))


if __name__ == "__main__":
    main()
