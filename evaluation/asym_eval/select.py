"""``asym-eval select``: the paper's checkpoint protocol (SPEC §6). Every checkpoint is scored on one
benchmark (MATH-500), the best one is scored on all of them, and OUT/selection.json + selection.md say which
won and why. Each checkpoint gets its own resumable run folder OUT/<checkpoint>/, so the winner's MATH-500
samples are reused, and a killed selection picks up where it stopped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from asym_eval.harness import _write_atomic, run_evaluation

_STEP = re.compile(r"(\d+)(?!.*\d)")  # the last number in the folder name: global_step120, checkpoint-120


def find_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Subfolders holding a config.json, ordered by the training step in their name."""
    if not folder.is_dir():
        raise ValueError(f"--checkpoints: {folder} is not a folder")
    found = []
    for path in sorted(folder.iterdir()):
        match = _STEP.search(path.name)
        if path.is_dir() and (path / "config.json").is_file() and match:
            found.append((int(match.group(1)), path))
    if not found:
        raise ValueError(
            f"--checkpoints: no subfolder of {folder} has a config.json and a step number in its name"
        )
    return sorted(found)


def select_checkpoint(args, make_config) -> dict:
    out = Path(args.output_dir)
    checkpoints = find_checkpoints(Path(args.checkpoints))
    selection_spec = next(
        (item for item in args.benchmarks.split(",") if item.split("=")[0].strip() == args.select_on),
        args.select_on,
    )
    sweep = []
    for step, path in checkpoints:
        print(f"[select] step {step}: {path.name} on {args.select_on}")
        config = make_config(
            args, str(path), str(out / path.name), benchmarks=selection_spec, run_name=path.name
        )
        summary = run_evaluation(config)
        sweep.append(
            {
                "step": step,
                "checkpoint": str(path),
                "avg_at_k": summary["benchmarks"][args.select_on]["avg_at_k"],
            }
        )
    # Highest score wins; on a tie the earlier step (less training for the same score).
    best = max(sweep, key=lambda row: (row["avg_at_k"], -row["step"]))
    winner = Path(best["checkpoint"])
    print(f"[select] best: {winner.name} (step {best['step']}); scoring it on {args.benchmarks}")
    final = run_evaluation(make_config(args, str(winner), str(out / winner.name), run_name=winner.name))
    runner_up = sorted((row["avg_at_k"] for row in sweep), reverse=True)[1:2]
    reason = (
        f"{winner.name} (step {best['step']}) has the highest {args.select_on} Avg@k, {best['avg_at_k']:.2f}, "
        f"of {len(sweep)} checkpoints"
        + (f" (next best {runner_up[0]:.2f})" if runner_up else "")
        + "; ties go to the earlier step."
    )
    selection = {
        "select_on": args.select_on,
        "sweep": sweep,
        "winner": {**best, "benchmarks": final["benchmarks"], "mean_avg_at_k": final["mean_avg_at_k"]},
        "reason": reason,
    }
    _write_atomic(out / "selection.json", json.dumps(selection, indent=2) + "\n")
    lines = [
        f"# Checkpoint selection on {args.select_on}",
        "",
        reason,
        "",
        "| step | checkpoint | Avg@k |",
        "|---|---|---|",
    ]
    lines += [f"| {row['step']} | {Path(row['checkpoint']).name} | {row['avg_at_k']:.2f} |" for row in sweep]
    lines += ["", "Winner on every benchmark:", "", (out / winner.name / "table.md").read_text()]
    _write_atomic(out / "selection.md", "\n".join(lines))
    print(reason)
    return selection
