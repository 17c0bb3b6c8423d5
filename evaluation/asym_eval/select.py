"""``asym-eval select``: the paper's checkpoint protocol (SPEC §6). Every checkpoint is scored on one
benchmark (MATH-500), the best one is scored on all of them, and OUT/selection.json + selection.md say which
won and why. Each checkpoint gets its own resumable run folder OUT/<checkpoint>/, so the winner's MATH-500
samples are reused, and a killed selection picks up where it stopped.

One step is scored once. OpenRLHF saves ``global_step<N>_hf`` and, on a new best, ``best_global_step<N>_hf`` from
the same policy state within step N, and the final policy (``--final``) is the state after the last step; so
folders of one step hold the same weights, and the regular folder stands for the others. This is taken from how
upstream saves, not checked on the weights (same-sized files would prove nothing, hashing costs minutes).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from asym_eval.files import FINAL_MARKER, check_output_dir, write_atomic
from asym_eval.harness import run_evaluation

_STEP = re.compile(r"(\d+)(?!.*\d)")  # the last number in the folder name: global_step120, checkpoint-120


def find_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Subfolders holding a config.json, ordered by the training step in their name, then regular before
    ``best_`` copies."""
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
    return sorted(found, key=lambda item: (item[0], item[1].name.startswith("best"), item[1].name))


def read_final(folder: Path) -> tuple[int, Path]:
    """The final policy (``--ckpt.output_dir``) and its step, from the marker the trainer writes there."""
    marker = folder / FINAL_MARKER
    if not folder.is_dir():
        raise ValueError(f"--final: {folder} is not a folder")
    if not (folder / "config.json").is_file():
        raise ValueError(f"--final: {folder} has no config.json (not a model folder)")
    if not marker.is_file():
        raise ValueError(
            f"--final: {folder} has no {FINAL_MARKER} (AsymPPOTrainer writes it with the step at the end of training)"
        )
    try:
        step = json.loads(marker.read_text(encoding="utf-8"))["global_step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        step = None
    if type(step) is not int or step < 0:
        raise ValueError(f'--final: {marker} must hold {{"global_step": N}} with N >= 0')
    # The marker is written just before upstream saves the model, and config.json is the save's last file.
    if (folder / "config.json").stat().st_mtime < marker.stat().st_mtime:
        print(
            f"[select] warning: {folder}/config.json is older than {FINAL_MARKER}: the save after training "
            f"may not have finished, or the folder holds an older model than step {step}",
            file=sys.stderr,
        )
    return step, folder


def run_folder_name(checkpoint: Path, step: int, is_final: bool) -> str:
    """The run folder (under OUT) a candidate is evaluated in: its folder's name. The final folder's name
    carries no step, so its step is added: a later final of a resumed run must not reuse its samples."""
    return f"{checkpoint.name}_step{step}" if is_final else checkpoint.name


def group_by_step(candidates: list[tuple[int, Path]]) -> list[tuple[int, list[Path]]]:
    """One entry per step, its folders in the order given (the first is the one scored)."""
    groups: dict[int, list[Path]] = {}
    for step, path in candidates:
        groups.setdefault(step, []).append(path)
    return sorted(groups.items())


def _label(path: Path, final) -> str:
    return f"{path.name} (--final)" if final and path == final[1] else path.name


def _hint_final(checkpoints: Path) -> None:
    sibling = checkpoints.parent / "final"  # the launch scripts' RUN/ckpt and RUN/final
    if (sibling / FINAL_MARKER).is_file():
        print(f"[select] note: {sibling} holds the run's final policy; add --final {sibling} to score it too")


def select_checkpoint(args, make_config) -> dict:
    out = check_output_dir(args.output_dir, "--output_dir")
    candidates = find_checkpoints(Path(args.checkpoints))
    final = read_final(Path(args.final)) if args.final else None
    if final is None:
        _hint_final(Path(args.checkpoints))
    elif final[1].resolve() not in {path.resolve() for _, path in candidates}:
        candidates.append(final)  # last: at a shared step the checkpoint folder is scored
    selection_spec = next(
        (item for item in args.benchmarks.split(",") if item.split("=")[0].strip() == args.select_on),
        args.select_on,
    )
    sweep, run_names = [], {}
    for step, (path, *same) in group_by_step(candidates):
        run_name = run_folder_name(path, step, bool(final) and path == final[1])
        also = f" (also {', '.join(_label(p, final) for p in same)}: same weights)" if same else ""
        print(f"[select] step {step}: {_label(path, final)}{also} on {args.select_on}")
        config = make_config(
            args, str(path), str(out / run_name), benchmarks=selection_spec, run_name=run_name
        )
        summary = run_evaluation(config)
        run_names[step] = run_name
        sweep.append(
            {
                "step": step,
                "checkpoint": str(path),
                "same_weights": [str(p) for p in same],
                "avg_at_k": summary["benchmarks"][args.select_on]["avg_at_k"],
            }
        )
    # Highest score wins; on a tie the earlier step (less training for the same score).
    best = max(sweep, key=lambda row: (row["avg_at_k"], -row["step"]))
    winner, winner_run = Path(best["checkpoint"]), run_names[best["step"]]
    print(f"[select] best: {winner.name} (step {best['step']}); scoring it on {args.benchmarks}")
    scores = run_evaluation(make_config(args, str(winner), str(out / winner_run), run_name=winner_run))
    runner_up = sorted((row["avg_at_k"] for row in sweep), reverse=True)[1:2]
    reason = (
        f"{winner.name} (step {best['step']}) has the highest {args.select_on} Avg@k, {best['avg_at_k']:.2f}, "
        f"of {len(sweep)} checkpoints"
        + (f" (next best {runner_up[0]:.2f})" if runner_up else "")
        + "; ties go to the earlier step."
    )
    selection = {
        "select_on": args.select_on,
        "final": str(final[1]) if final else None,
        "sweep": sweep,
        "winner": {**best, "benchmarks": scores["benchmarks"], "mean_avg_at_k": scores["mean_avg_at_k"]},
        "reason": reason,
    }
    write_atomic(out / "selection.json", json.dumps(selection, indent=2) + "\n")
    lines = [
        f"# Checkpoint selection on {args.select_on}",
        "",
        reason,
        "",
        "| step | checkpoint | Avg@k |",
        "|---|---|---|",
    ]
    for row in sweep:
        name = _label(Path(row["checkpoint"]), final)
        same = ", ".join(_label(Path(p), final) for p in row["same_weights"])
        lines.append(f"| {row['step']} | {name}{f' (also {same})' if same else ''} | {row['avg_at_k']:.2f} |")
    lines += ["", "Winner on every benchmark:", "", (out / winner_run / "table.md").read_text()]
    write_atomic(out / "selection.md", "\n".join(lines))
    print(reason)
    return selection
