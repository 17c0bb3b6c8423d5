"""``asym-rl lite``: RL with verifiable rewards on one machine (CPU in minutes, or one GPU).

One step: sample G responses for each of P prompts, score them (binary reward), compute advantages with the
registry (``compute_advantages``), then take ``--mini_batches`` optimizer steps over the rollout batch with the
clipped surrogate and token-level aggregation. Every formula comes from ``asym_openrlhf.algorithms``.

Where it departs from the paper's setting (SPEC §5), on purpose: a tiny char-level model warm-started on
addition instead of a 1.5B/4B model on MATH (``--model``/``--task math`` bring those back), one process
instead of verl/OpenRLHF workers, and the old log-probs and entropies come from the sampler's own logits
(untempered), not from a second forward pass: equal to float rounding, and one forward cheaper per step.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from asym_eval.files import write_atomic

from asym_openrlhf.lite.settings import (
    RESUMABLE_CHANGES,
    Settings,
    add_arguments,
    default_settings,
    settings_from_args,
)
from asym_openrlhf.lite.trainer import Trainer

# What `asym-rl lite` (cli/main.py), the study, the benchmarks and the tests import from here.
__all__ = [
    "Settings",
    "Trainer",
    "add_arguments",
    "default_settings",
    "eval_command",
    "run",
    "settings_from_args",
    "train",
]


def _read_metrics(path: Path, up_to_step: int) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if row["step"] <= up_to_step]


def train(settings: Settings, progress: bool = True) -> dict:
    """Run (or resume) one training; returns the summary also written to ``OUTPUT/summary.json``."""
    from tqdm import tqdm

    s = settings
    out = Path(s.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_path, summary_path = out / "config.json", out / "summary.json"
    checkpoint, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
    config = s.to_json()
    if config_path.exists():
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        changed = sorted(
            k
            for k in set(saved) | set(config)
            if k not in RESUMABLE_CHANGES and saved.get(k) != config.get(k)
        )
        if changed:
            raise ValueError(
                f"--output_dir: {out} holds a run with other settings ({', '.join(changed)}); use a new --output_dir"
            )
    if summary_path.exists():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if summary["steps"] == s.steps:
            return summary  # finished already
    write_atomic(config_path, json.dumps(config, indent=2))

    trainer = Trainer(s)
    write_atomic(
        out / "heldout.jsonl",
        "".join(
            json.dumps({"id": p.id, "problem": p.prompt, "answer": p.answer}) + "\n"
            for p in trainer.task.heldout
        ),
    )
    if checkpoint.exists():
        trainer.load_checkpoint(checkpoint)
    # Keep the metric rows the checkpoint covers; steps logged after it are redone identically.
    rows = _read_metrics(metrics_path, trainer.step_count)
    write_atomic(metrics_path, "".join(json.dumps(row) + "\n" for row in rows))

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tb"), purge_step=trainer.step_count + 1 if trainer.step_count else None)

    def log(row: dict) -> None:
        with open(metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        for key, value in row.items():
            if key != "step" and value is not None:
                writer.add_scalar(key, value, row["step"])

    curve_n = s.pass_curve_samples or None  # the start and the end get the long pass@k curve
    if not rows:
        rows = [{"step": 0, **trainer.evaluate(samples_per_prompt=curve_n)}]
        log(rows[0])
    started = time.perf_counter()
    start_step = trainer.step_count
    if start_step and progress:
        print(f"resuming: {start_step} of {s.steps} steps done ({out})")
    bar = tqdm(
        total=s.steps, initial=start_step, desc=f"lite {s.estimator}", disable=not progress, unit="step"
    )
    # The bar shows the latest held-out accuracy from the start (step 0 is always evaluated).
    last_eval = next((row["eval/accuracy"] for row in reversed(rows) if "eval/accuracy" in row), None)
    while trainer.step_count < s.steps:
        row = {"step": trainer.step_count + 1, **trainer.step()}
        if row["step"] % s.eval_every == 0 or row["step"] == s.steps:
            row.update(trainer.evaluate(samples_per_prompt=curve_n if row["step"] == s.steps else None))
            last_eval = row["eval/accuracy"]
        log(row)
        if row["step"] % s.save_every == 0:
            trainer.save_checkpoint(checkpoint)
        bar.update(1)
        bar.set_postfix(
            reward=f"{row['rollout/accuracy']:.2f}",
            entropy=f"{row['actor/entropy']:.3f}",
            eval=None if last_eval is None else f"{last_eval:.3f}",
        )
    bar.close()
    writer.close()
    trainer.save_checkpoint(checkpoint)
    trainer.save_policy(out / "final")
    elapsed = time.perf_counter() - started
    rows = _read_metrics(metrics_path, s.steps)
    summary = {
        "steps": s.steps,
        "estimator": s.estimator,
        "eval/accuracy": rows[-1].get("eval/accuracy"),
        "eval/accuracy_start": rows[0].get("eval/accuracy"),
        "seconds_this_session": round(elapsed, 2),
        "seconds_per_step_this_session": round(elapsed / max(s.steps - start_step, 1), 4),
        "final_policy": str(out / "final"),
        "heldout": str(out / "heldout.jsonl"),
    }
    write_atomic(summary_path, json.dumps(summary, indent=2))
    return summary


def eval_command(settings: Settings) -> str:
    """The ``asym-eval run`` line that scores a finished run's policy on its held-out prompts, as lite's own
    eval does: greedy, one sample, raw prompts, lite's response length, the hf backend (vLLM's start-up costs
    more than the whole evaluation of a tiny model), float32. ``tests/test_lite_training.py`` runs it."""
    out = Path(settings.output_dir)
    model, heldout, eval_dir = (shlex.quote(str(out / name)) for name in ("final", "heldout.jsonl", "eval"))
    return (
        f"asym-eval run --model {model} --benchmarks lite={heldout} "
        f"--output_dir {eval_dir} --prompt_format raw --backend hf --dtype float32 --temperature 0 "
        f"--n 1 --max_tokens {settings.max_new_tokens}"
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    summary = train(settings)
    out = Path(settings.output_dir)
    print(
        f"held-out greedy accuracy {summary['eval/accuracy_start']:.3f} -> {summary['eval/accuracy']:.3f} "
        f"in {summary['steps']} steps ({settings.estimator}); metrics: {out / 'metrics.jsonl'}, "
        f"policy: {out / 'final'}\n"
        f"evaluate it: {eval_command(settings)}"
    )
    return 0
