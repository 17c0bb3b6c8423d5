"""``asym-rl lite`` against TRL 1.16's ``GRPOTrainer``, side by side in one process, same everything.

Same tiny model (the shipped default warm start), task (1-2 digit addition), batch shape (16 prompts × 8
rollouts = 128 completions per rollout batch, 2 optimizer mini-batches of 64), estimator (GRPO, unbiased std),
clip 0.2/0.28, token-level loss, no KL, lr 2e-4, max 12 new tokens, temperature 1. TRL counts optimizer steps,
so one of our steps (a rollout batch) equals two of its steps (``steps_per_generation=2``).

Rounds alternate ours, TRL, ours, TRL, ... on the same machine, and the ratio uses the median seconds per
rollout batch (the first batch of each round is warm-up and not timed), so that load from other processes
hits both sides alike. Also measures the peak RSS of a default ``asym-rl lite`` run in a subprocess.

    .venv/bin/python benchmarks/bench_lite_vs_trl.py            # targets: ratio <= 0.8, RSS < 1.5 GB
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from asym_openrlhf.lite.tasks import last_boxed
from asym_openrlhf.lite.tiny import TIERS
from asym_openrlhf.lite.train import Trainer, default_settings

SHAPE = dict(prompts_per_step=16, group_size=8, mini_batches=2, lr=2e-4, eps=(0.2, 0.28), max_new_tokens=12)


def ours(steps: int, seed: int, out: str) -> tuple[list[float], list[float]]:
    """Seconds per rollout batch and training reward per step."""
    trainer = Trainer(
        default_settings(
            advantage_estimator="group_norm",
            prompts_per_step=SHAPE["prompts_per_step"],
            group_size=SHAPE["group_size"],
            mini_batches=SHAPE["mini_batches"],
            lr=SHAPE["lr"],
            eps_clip_low_high=SHAPE["eps"],
            seed=seed,
            output_dir=out,
        )
    )
    times, rewards = [], []
    for _ in range(steps + 1):
        started = time.perf_counter()
        metrics = trainer.step()
        times.append(time.perf_counter() - started)
        rewards.append(metrics["rollout/accuracy"])
    return times[1:], rewards


def trl(steps: int, seed: int, out: str) -> tuple[list[float], list[float]]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from asym_openrlhf.lite.tasks import AdditionTask

    tier = TIERS["default"]
    task = AdditionTask(tier.max_digits, tier.heldout_size)
    dataset = Dataset.from_dict(
        {"prompt": [p.prompt for p in task.train], "answer": [p.answer for p in task.train]}
    )

    def reward(completions, answer, **_):
        return [float(last_boxed(c) == a) for c, a in zip(completions, answer)]

    batch = SHAPE["prompts_per_step"] * SHAPE["group_size"]
    config = GRPOConfig(
        output_dir=out,
        use_cpu=True,
        bf16=False,
        beta=0.0,
        loss_type="dapo",
        epsilon=SHAPE["eps"][0],
        epsilon_high=SHAPE["eps"][1],
        learning_rate=SHAPE["lr"],
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=1.0,
        num_generations=SHAPE["group_size"],
        per_device_train_batch_size=batch // SHAPE["mini_batches"],
        steps_per_generation=SHAPE["mini_batches"],
        max_completion_length=SHAPE["max_new_tokens"],
        temperature=1.0,
        max_steps=(steps + 1) * SHAPE["mini_batches"],
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        remove_unused_columns=False,
        seed=seed,
        disable_tqdm=True,
    )
    stamps = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    model = AutoModelForCausalLM.from_pretrained(tier.checkpoint_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tier.checkpoint_dir)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[Clock()],
    )
    trainer.remove_callback(PrinterCallback)  # its per-step dicts would bury the comparison
    trainer.train()
    per_batch = stamps[SHAPE["mini_batches"] - 1 :: SHAPE["mini_batches"]]  # end of each rollout batch
    times = [b - a for a, b in zip(per_batch, per_batch[1:])]
    rewards = [row["reward"] for row in trainer.state.log_history if "reward" in row]  # logged once per batch
    return times, rewards


def peak_rss_of_default_run(steps: int) -> float:
    """Peak resident memory (GB) of ``asym-rl lite`` with default settings, run for ``steps`` steps."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "asym_openrlhf.cli.main",
            "lite",
            "--steps",
            str(steps),
            "--output_dir",
            out,
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="timed rollout batches per round (default 15)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds of each trainer (default 2)"
    )
    parser.add_argument("--memory_steps", type=int, default=30, help="steps of the default run for peak RSS")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}", flush=True)
    times = {"asym-rl lite": [], "TRL GRPOTrainer": []}
    curves = {"asym-rl lite": [], "TRL GRPOTrainer": []}
    with tempfile.TemporaryDirectory() as out:
        for round_index in range(args.rounds):
            for name, fn in (("asym-rl lite", ours), ("TRL GRPOTrainer", trl)):
                seconds, rewards = fn(args.steps, seed=round_index, out=out)
                times[name] += seconds
                curves[name].append(rewards)
                print(
                    f"round {round_index} {name}: {statistics.median(seconds):.3f} s per rollout batch",
                    flush=True,
                )
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["asym-rl lite"] / median["TRL GRPOTrainer"]
    print("\nseconds per rollout batch (16 prompts x 8 rollouts, 2 optimizer steps), median over rounds:")
    for name, value in median.items():
        print(f"  {name:16s} {value:.3f}")
    print(f"ratio ours / TRL = {ratio:.2f}  (target <= 0.8)")
    print("\nlearning curves: training reward per rollout batch, mean over rounds")
    for name, runs in curves.items():
        length = min(len(r) for r in runs)
        mean = [statistics.fmean(r[i] for r in runs) for i in range(length)]
        print(f"  {name:16s} " + " ".join(f"{v:.2f}" for v in mean))
    rss = peak_rss_of_default_run(args.memory_steps)
    print(
        f"\npeak RSS of `asym-rl lite --steps {args.memory_steps}` (default settings): {rss:.2f} GB (target < 1.5)"
    )


if __name__ == "__main__":
    main()
