"""``asym-rl lite`` against TRL 1.16's ``GRPOTrainer``, side by side in one process, same everything.

Same tiny model (the shipped default warm start), task (1-2 digit addition), batch shape (16 prompts × 8
rollouts = 128 completions per rollout batch, 2 optimizer mini-batches of 64), estimator (GRPO, unbiased std),
clip 0.2/0.28, token-level loss, no KL, lr 2e-4, max 12 new tokens, temperature 1, one torch thread (the
study's setting). TRL counts optimizer steps, so one of our steps (a rollout batch) equals two of its steps
(``steps_per_generation=2``).

The two alternate step by step: after each TRL rollout batch a callback runs one of ours, so that load from
other processes on a shared machine hits both alike. The ratio uses the median seconds per rollout batch (the
first batch of each round is warm-up and not timed); each round is one seed. Then it splits our step into
phases (seconds per step), and measures the peak RSS of a default ``asym-rl lite`` run in a subprocess.

    .venv/bin/python benchmarks/bench_lite_vs_trl.py            # targets: ratio <= 0.5, RSS < 1.5 GB
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

import asym_openrlhf.lite.train as lite
from asym_openrlhf.lite.tasks import last_boxed
from asym_openrlhf.lite.tiny import TIERS

SHAPE = dict(prompts_per_step=16, group_size=8, mini_batches=2, lr=2e-4, eps=(0.2, 0.28), max_new_tokens=12)
TARGET_RATIO = 0.5


def ours(seed: int, out: str, threads: int) -> lite.Trainer:
    return lite.Trainer(
        lite.default_settings(
            advantage_estimator="group_norm",
            prompts_per_step=SHAPE["prompts_per_step"],
            group_size=SHAPE["group_size"],
            mini_batches=SHAPE["mini_batches"],
            lr=SHAPE["lr"],
            eps_clip_low_high=SHAPE["eps"],
            seed=seed,
            threads=threads,
            output_dir=out,
        )
    )


def side_by_side(steps: int, seed: int, out: str, threads: int) -> dict:
    """TRL trains; after each of its rollout batches one of our steps runs. Seconds per rollout batch and
    training reward per batch of each, warm-up batch dropped from the times."""
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
    mine = ours(seed, out, threads)
    times = {"asym-rl lite": [], "TRL GRPOTrainer": []}
    our_rewards = []

    class Interleave(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.resumed = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % SHAPE["mini_batches"]:
                return  # inside a rollout batch
            started = time.perf_counter()
            times["TRL GRPOTrainer"].append(started - self.resumed)
            metrics = mine.step()
            times["asym-rl lite"].append(time.perf_counter() - started)
            our_rewards.append(metrics["rollout/accuracy"])
            self.resumed = time.perf_counter()

    model = AutoModelForCausalLM.from_pretrained(tier.checkpoint_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tier.checkpoint_dir)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[Interleave()],
    )
    trainer.remove_callback(PrinterCallback)  # its per-step dicts would bury the comparison
    torch.set_num_threads(threads)
    trainer.train()
    trl_rewards = [row["reward"] for row in trainer.state.log_history if "reward" in row]  # once per batch
    return {
        "times": {name: values[1:] for name, values in times.items()},
        "rewards": {"asym-rl lite": our_rewards, "TRL GRPOTrainer": trl_rewards},
    }


@contextlib.contextmanager
def timed(owner, name: str, seconds: dict, label=None):
    """Replace ``owner.name`` by a wrapper that adds its wall time to ``seconds[label(...)]``."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        key = label() if label else name
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def breakdown(steps: int, seed: int, out: str, threads: int) -> tuple[dict, float, dict]:
    """Where our step's time goes: seconds per step by phase, and seconds per ``evaluate()`` by phase."""
    trainer = ours(seed, out, threads)
    seconds: dict[str, float] = {}
    names = {
        "generate": "sampling (generate)",
        "decode_responses": "decode to text",
        "reward": "reward",
        "train forward": "training forward (2 mini-batches)",
        "gain forward": "forward for actor/pos_logprob_gain",
        "backward": "backward",
        "step": "optimizer (AdamW)",
        "clip_grad_norm_": "grad-norm clip",
    }
    with contextlib.ExitStack() as patches:
        for owner, name in (
            (lite, "generate"),
            (lite, "decode_responses"),
            (trainer.task, "reward"),
            (trainer.optimizer, "step"),
            (torch.nn.utils, "clip_grad_norm_"),
            (torch.Tensor, "backward"),
        ):
            patches.enter_context(timed(owner, name, seconds))
        grad_or_not = lambda: "train forward" if torch.is_grad_enabled() else "gain forward"  # noqa: E731
        patches.enter_context(timed(lite, "response_logprobs", seconds, grad_or_not))
        trainer.step()  # warm-up
        seconds.clear()
        started = time.perf_counter()
        for _ in range(steps):
            trainer.step()
        total = time.perf_counter() - started
        per_step = {names[k]: v / steps for k, v in seconds.items()}
        per_step["the rest (advantages, loss, metrics)"] = (total - sum(seconds.values())) / steps
        seconds.clear()
        started = time.perf_counter()
        trainer.evaluate()
        evaluation = {"total": time.perf_counter() - started, **{names[k]: v for k, v in seconds.items()}}
    return per_step, total / steps, evaluation


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
    parser.add_argument("--rounds", type=int, default=2, help="rounds (seeds 0, 1, ...) (default 2)")
    parser.add_argument("--memory_steps", type=int, default=30, help="steps of the default run for peak RSS")
    parser.add_argument("--breakdown_steps", type=int, default=10, help="steps timed by phase (0 = skip)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both (default 1)")
    args = parser.parse_args()
    print(f"torch threads {args.threads}, cpus {os.cpu_count()}, load average {os.getloadavg()}", flush=True)
    times = {"asym-rl lite": [], "TRL GRPOTrainer": []}
    curves = {"asym-rl lite": [], "TRL GRPOTrainer": []}
    with tempfile.TemporaryDirectory() as out:
        for round_index in range(args.rounds):
            result = side_by_side(args.steps, round_index, out, args.threads)
            for name in times:
                times[name] += result["times"][name]
                curves[name].append(result["rewards"][name])
            medians = {name: statistics.median(values) for name, values in result["times"].items()}
            print(
                f"round {round_index}: "
                + ", ".join(f"{name} {value:.3f} s" for name, value in medians.items())
                + f" per rollout batch; load average {os.getloadavg()}",
                flush=True,
            )
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["asym-rl lite"] / median["TRL GRPOTrainer"]
    print("\nseconds per rollout batch (16 prompts x 8 rollouts, 2 optimizer steps), median over rounds:")
    for name, value in median.items():
        print(f"  {name:16s} {value:.3f}")
    print(f"ratio ours / TRL = {ratio:.2f}  (target <= {TARGET_RATIO})")
    print("\nlearning curves: training reward per rollout batch, mean over rounds")
    for name, runs in curves.items():
        length = min(len(r) for r in runs)
        mean = [statistics.fmean(r[i] for r in runs) for i in range(length)]
        print(
            f"  {name:16s} " + " ".join(f"{v:.2f}" for v in mean) + f"   (mean {statistics.fmean(mean):.3f})"
        )
    if args.breakdown_steps:
        with tempfile.TemporaryDirectory() as out:
            per_step, total, evaluation = breakdown(args.breakdown_steps, 0, out, args.threads)
        print(f"\nour step by phase, seconds per step over {args.breakdown_steps} steps (total {total:.3f}):")
        for name, value in per_step.items():
            print(f"  {name:40s} {value:.4f}")
        print("one evaluate() (greedy on the held-out set, pass@k samples), seconds:")
        for name, value in evaluation.items():
            print(f"  {name:40s} {value:.4f}")
    rss = peak_rss_of_default_run(args.memory_steps)
    print(
        f"\npeak RSS of `asym-rl lite --steps {args.memory_steps}` (default settings): {rss:.2f} GB (target < 1.5)"
    )
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
