"""``asym-rl plot``: the paper's training-curve figures (Fig. 2-5) from your runs' logs.

Each ``--runs NAME=DIR`` is an OpenRLHF run (its TensorBoard event files, in DIR or a folder below it) or an
``asym-rl lite`` output folder (its ``metrics.jsonl``). Several DIRs under one NAME are seeds: drawn as their
mean with a min-max band. Each seed is smoothed on its own (EMA, SPEC §4) over the steps it logged, then the
seeds are averaged step by step; where seeds logged different steps, a step's mean is over those that have it.

For each figure OUT/<figure>.png and .svg, and OUT/<figure>.csv with every series drawn, raw and smoothed:
one row per (panel, run, source, step), where source is a seed's DIR, or ``mean``, ``min``, ``max`` across
the NAME's seeds (the line is ``mean``'s smoothed column, the band ``min``/``max``'s).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from asym_eval.files import check_output_dir

from asym_openrlhf.algorithms.metrics import ema, ema_over_steps

LITE = "asym-rl lite"
OPENRLHF = "OpenRLHF"
BENCHMARKS = {
    "math500": "MATH-500",
    "aime24": "AIME24",
    "aime25": "AIME25",
    "amc23": "AMC23",
    "olympiadbench": "Olympiad",
}


@dataclass(frozen=True)
class Panel:
    title: str
    openrlhf: (
        str | None
    )  # TensorBoard tag as upstream's TensorboardLogger writes it (train/<key>, eval/<key>)
    lite: str | None  # key in an asym-rl lite metrics.jsonl; None: lite does not log it


ENTROPY = Panel("policy entropy", "train/actor/entropy", "actor/entropy")
# OpenRLHF validates on MATH-500 (greedy, every 10 steps: examples/scripts/common.sh); lite on its held-out set.
VAL_ACC = Panel("validation accuracy", "eval/eval_math500_pass1", "eval/accuracy")
ALL_SOLVED = Panel("all-solved fraction", "train/rollout/all_solved_frac", "rollout/all_solved_frac")
NONE_SOLVED = Panel("none-solved fraction", "train/rollout/none_solved_frac", "rollout/none_solved_frac")

FIGURES: dict[str, tuple[str, list[Panel]]] = {
    "fig2": (
        "Fig. 2: training dynamics",
        [
            ENTROPY,
            VAL_ACC,
            ALL_SOLVED,
            NONE_SOLVED,
            Panel("positive-rollout log-prob gain", "train/actor/pos_logprob_gain", "actor/pos_logprob_gain"),
        ],
    ),
    # Fig. 3 and Fig. 4 have the same panels; the paper draws them for different runs, so the title says which.
    "fig3": ("Fig. 3 panels (in the paper: EntIncrease and EntDecrease against GRPO)", [ENTROPY, VAL_ACC]),
    "fig4": ("Fig. 4 panels (in the paper: AsymGRPO against the baselines)", [ENTROPY, VAL_ACC]),
    "fig5": (
        "Fig. 5: extended training dynamics",
        # Lite's reward is the binary correctness, which it logs as rollout/accuracy.
        [Panel("training reward", "train/rollout/reward_mean", "rollout/accuracy")]
        + [Panel(f"{label} accuracy", f"eval/eval_{name}_pass1", None) for name, label in BENCHMARKS.items()]
        + [
            Panel("perfect rate (all-solved)", ALL_SOLVED.openrlhf, ALL_SOLVED.lite),
            Panel("zero rate (none-solved)", NONE_SOLVED.openrlhf, NONE_SOLVED.lite),
        ],
    ),
    # Metrics beyond the paper's figures (METRICS names), drawn only where some run logged them; a panel no
    # run has is left out of this figure. The beta panels wait for the beta schedules / controller.
    "extra": (
        "Metrics beyond the paper",
        [
            Panel("entropy of correct rollouts", "train/actor/entropy_pos", "actor/entropy_pos"),
            Panel("entropy of wrong rollouts", "train/actor/entropy_neg", "actor/entropy_neg"),
            Panel(
                "unique correct solutions", "train/rollout/unique_correct_frac", "rollout/unique_correct_frac"
            ),
            Panel("held-out pass@1", None, "eval/pass_at_1"),
            Panel("beta+", "train/actor/beta_pos", "actor/beta_pos"),
            Panel("beta-", "train/actor/beta_neg", "actor/beta_neg"),
        ],
    ),
}
OPTIONAL_FIGURES = {"extra", "passk"}
# Not a panel of curves over steps: pass@k against k, at the first and the last eval that logged a pass@k curve.
PASS_CURVE = "passk"
PASS_PREFIX = "eval/pass_at_"
ALL_FIGURES = [*FIGURES, PASS_CURVE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs",
        nargs="+",
        required=True,
        metavar="NAME=DIR",
        help="runs to draw: DIR is an OpenRLHF run (its TensorBoard folder or any folder above it) or an "
        "asym-rl lite output folder; repeat a NAME for seeds (drawn as mean and min-max band)",
    )
    parser.add_argument(
        "--output", required=True, metavar="OUT", help="folder for the PNG, SVG and CSV files"
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=0.7,
        help="EMA factor in [0, 1): s_t = f*s_(t-1) + (1-f)*x_t; the paper's 0.7 (SPEC §4), 0 = raw",
    )
    parser.add_argument(
        "--ema_over",
        choices=("steps", "points"),
        default="steps",
        help="steps (default): the decay counts training steps, f^d for d steps between logged points, so a "
        "metric logged every 10 steps (validation) is not dragged back to its first points; points: f per "
        "logged point (the same for metrics logged every step)",
    )
    parser.add_argument(
        "--figures",
        default=",".join(ALL_FIGURES),
        help=f"comma list of {', '.join(ALL_FIGURES)} (default: all; extra only where its metrics were logged; "
        "passk: pass@k against k at the first and last eval, from asym-rl lite's eval/pass_at_k, "
        "k = 1, 2, 4, ... n, mean over a NAME's seeds with a 95%% t band)",
    )


# ---- reading runs -----------------------------------------------------------------------------------------


@dataclass
class RunLog:
    folder: Path
    kind: str  # LITE or OPENRLHF
    series: dict[str, dict[int, float]]  # tag or metrics.jsonl key -> step -> value


def _read_lite(folder: Path) -> dict[str, dict[int, float]]:
    series: dict[str, dict[int, float]] = {}
    path = folder / "metrics.jsonl"
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            step = int(row["step"])
            values = {key: float(value) for key, value in row.items() if key != "step" and value is not None}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"--runs: {path}:{number}: not a metrics row ({err})") from None
        for key, value in values.items():
            series.setdefault(key, {})[step] = value
    return series


def tensorboard_events(event_folders: list[Path]) -> dict[str, list]:
    """Every scalar event of every folder, by tag (a step logged by two launches appears twice)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events: dict[str, list] = {}
    for folder in event_folders:
        accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            events.setdefault(tag, []).extend(accumulator.Scalars(tag))
    return events


def _read_tensorboard(event_folders: list[Path]) -> dict[str, dict[int, float]]:
    events = tensorboard_events(event_folders)
    # A resumed run logs the steps after its last checkpoint again: the later write of a step wins.
    return {
        tag: {event.step: event.value for event in sorted(points, key=lambda e: e.wall_time)}
        for tag, points in events.items()
    }


def read_run(folder: Path) -> RunLog:
    """Detect an asym-rl lite folder (metrics.jsonl) or an OpenRLHF run (TensorBoard event files) and read it."""
    if not folder.is_dir():
        raise ValueError(f"--runs: {folder} is not a folder")
    if (folder / "metrics.jsonl").is_file():
        return RunLog(folder, LITE, _read_lite(folder))
    event_folders = sorted({path.parent for path in folder.rglob("events.out.tfevents.*")})
    if not event_folders:
        raise ValueError(
            f"--runs: {folder} has no metrics.jsonl (asym-rl lite) and no TensorBoard event files (OpenRLHF)"
        )
    lite_folder = event_folders[0].parent  # a lite folder's own TensorBoard copy is in its tb/
    if len(event_folders) == 1 and (lite_folder / "metrics.jsonl").is_file():
        return RunLog(lite_folder, LITE, _read_lite(lite_folder))
    # OpenRLHF writes each launch to tensorboard_dir/<run_name>: siblings are one run launched again (resumed).
    parents = {path.parent for path in event_folders}
    if len(parents) > 1:
        shown = ", ".join(str(path) for path in event_folders[:4])
        raise ValueError(
            f"--runs: {folder} holds the logs of several runs ({shown}{', ...' if len(event_folders) > 4 else ''}); "
            "give each its own NAME=DIR"
        )
    return RunLog(folder, OPENRLHF, _read_tensorboard(event_folders))


def parse_runs(specs: list[str]) -> dict[str, list[RunLog]]:
    runs: dict[str, list[RunLog]] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--runs: expected NAME=DIR, got {spec!r}")
        runs.setdefault(name, []).append(read_run(Path(folder)))
    return runs


# ---- series -----------------------------------------------------------------------------------------------


def panel_series(seeds: list[RunLog], panel: Panel, factor: float, over_steps: bool = True):
    """Per seed that logged the panel's metric: (seed, key, steps, raw, smoothed); and the seeds that did not."""
    found, missing = [], []
    for run in seeds:
        key = panel.openrlhf if run.kind == OPENRLHF else panel.lite
        if panel is VAL_ACC and run.kind == OPENRLHF and key not in run.series:
            # a run validated on another set than MATH-500: its one eval_<datasource>_pass1, if it has one
            others = [tag for tag in run.series if re.fullmatch(r"eval/eval_\w+_pass1", tag)]
            key = others[0] if len(others) == 1 else key
        points = run.series.get(key) if key else None
        if not points:
            missing.append(run)
            continue
        steps = sorted(points)
        raw = [points[step] for step in steps]
        smoothed = ema_over_steps(steps, raw, factor) if over_steps else ema(raw, factor)
        found.append((run, key, steps, raw, smoothed))
    return found, missing


def aggregate(found) -> dict[str, list[tuple[int, float, float]]]:
    """mean / min / max across seeds at each step: source -> [(step, raw, smoothed)]."""
    by_step: dict[int, list[tuple[float, float]]] = {}
    for _, _, steps, raw, smoothed in found:
        for step, r, s in zip(steps, raw, smoothed):
            by_step.setdefault(step, []).append((r, s))
    rows: dict[str, list[tuple[int, float, float]]] = {"mean": [], "min": [], "max": []}
    for step in sorted(by_step):
        raws, smooths = zip(*by_step[step])
        rows["mean"].append((step, sum(raws) / len(raws), sum(smooths) / len(smooths)))
        rows["min"].append((step, min(raws), min(smooths)))
        rows["max"].append((step, max(raws), max(smooths)))
    return rows


# ---- drawing ----------------------------------------------------------------------------------------------


def _draw_run(axis, panel: Panel, run: str, found, color: str) -> list[tuple]:
    """One NAME's curve on ``axis`` (smoothed mean, faint raw mean, min-max band over seeds); its CSV rows."""
    rows = []
    for seed, key, steps, raw, smoothed in found:
        rows += [(panel.title, key, run, str(seed.folder), *row) for row in zip(steps, raw, smoothed)]
    aggregated = aggregate(found)
    keys = " / ".join(dict.fromkeys(key for _, key, *_ in found))
    for source in ["mean"] + (["min", "max"] if len(found) > 1 else []):
        rows += [(panel.title, keys, run, source, *row) for row in aggregated[source]]
    steps, raw, smoothed = zip(*aggregated["mean"])
    label = run + (f" ({len(found)} seeds)" if len(found) > 1 else "")
    # Sparse series (validation every 10 steps) show their raw points, so the smoothing hides no value.
    axis.plot(
        steps,
        raw,
        color=color,
        alpha=0.35,
        linewidth=0.8,
        marker="o" if len(steps) < 30 else None,
        markersize=3,
    )
    axis.plot(steps, smoothed, color=color, label=label)
    if len(found) > 1:
        low, high = [row[2] for row in aggregated["min"]], [row[2] for row in aggregated["max"]]
        axis.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
    return rows


# At most this many panels in a row: five in one row made Fig. 2 2520 x 408 px with text too small to read.
MAX_COLUMNS = 3


def draw_figure(
    name: str, runs: dict[str, list[RunLog]], factor: float, out: Path, over_steps: bool = True
) -> list[str] | None:
    """Write OUT/<name>.png/.svg/.csv; returns one note per panel some run lacked (a panel no run logged is
    left out, and named), or None when the figure had nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    plt.rcParams["svg.fonttype"] = "none"  # text stays text in the SVG: searchable and editable
    title, panels = FIGURES[name]
    computed = [
        (panel, {run: panel_series(seeds, panel, factor, over_steps) for run, seeds in runs.items()})
        for panel in panels
    ]
    # A panel no run logged (lite logs no MATH-500 or AIME accuracy) would be an empty box: left out, named.
    empty = [panel.title for panel, by_run in computed if not any(found for found, _ in by_run.values())]
    computed = [(p, by_run) for p, by_run in computed if p.title not in empty]
    if not computed:
        return None
    notes = (
        []
        if name in OPTIONAL_FIGURES or not empty
        else [f"{name}: left out, no run logged: {', '.join(empty)}"]
    )
    colors = {run: f"C{i % 10}" for i, run in enumerate(runs)}
    columns = min(MAX_COLUMNS, len(computed))
    rows_count = math.ceil(len(computed) / columns)
    figure, axes = plt.subplots(rows_count, columns, figsize=(4.2 * columns, 3.4 * rows_count), squeeze=False)
    csv_rows = []
    for axis, (panel, by_run) in zip(axes.flat, computed):
        lacked = []
        for run, (found, missing) in by_run.items():
            # A NAME none of whose seeds logged the metric is named; a seed that alone lacked it, by its folder.
            lacked += [f"{run} ({seed.folder})" for seed in missing] if found else [run]
            if found:
                csv_rows += _draw_run(axis, panel, run, found, colors[run])
        axis.set_xlabel("training step")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if axis.lines:
            axis.legend(fontsize=7)
        if lacked:
            note = f"not logged by: {', '.join(lacked)}"
            notes.append(f"{name} '{panel.title}': {note}")
        # Under the title, where it never covers a curve.
        axis.set_title(panel.title + (f"\n({note})" if lacked else ""), fontsize=10 if not lacked else 9)
    for axis in list(axes.flat)[len(computed) :]:
        axis.set_visible(False)
    smoothing = f"EMA {factor:g}{' per step' if over_steps else ' per point'}" if factor else "no smoothing"
    figure.suptitle(f"{title} ({smoothing}; faint: raw)", fontsize=11)
    figure.tight_layout()
    for suffix in ("png", "svg"):
        figure.savefig(out / f"{name}.{suffix}", dpi=120)
    plt.close(figure)
    with open(out / f"{name}.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["panel", "metric", "run", "source", "step", "raw", "smoothed"])
        writer.writerows(csv_rows)
    return notes


def pass_curve_at(run: RunLog, which: int) -> tuple[int, dict[int, float]] | None:
    """(step, {k: pass@k}) at the first (``which`` 0) or last (-1) step that logged a pass@k curve (k > 1)."""
    by_step: dict[int, dict[int, float]] = {}
    for key, points in run.series.items():
        if key.startswith(PASS_PREFIX) and key[len(PASS_PREFIX) :].isdigit():
            for step, value in points.items():
                by_step.setdefault(step, {})[int(key[len(PASS_PREFIX) :])] = value
    steps = sorted(step for step, curve in by_step.items() if len(curve) > 1)
    return (steps[which], by_step[steps[which]]) if steps else None


def draw_pass_figure(runs: dict[str, list[RunLog]], out: Path) -> list[str] | None:
    """OUT/passk.png/.csv: per NAME, pass@k against k at its first eval (dashed) and its last (solid), the
    mean over seeds with a 95% t band; the k are those every seed logged. None when no run logged a curve."""
    from asym_eval.plots import draw_pass_curves

    from asym_openrlhf.lite.stats import mean_interval

    curves, colors, dashed, notes = {}, {}, set(), []
    for index, (name, seeds) in enumerate(runs.items()):
        for which, tag in ((0, "first"), (-1, "last")):
            found = [c for c in (pass_curve_at(seed, which) for seed in seeds) if c]
            if len(found) < len(seeds):
                lacking = [str(seed.folder) for seed in seeds if not pass_curve_at(seed, which)]
                notes.append(f"passk: no pass@k curve logged by {name} ({', '.join(lacking)})")
            if not found:
                continue
            ks = sorted(set.intersection(*(set(curve) for _, curve in found)))
            steps = sorted({step for step, _ in found})
            label = f"{name}, step {'/'.join(map(str, steps))}"
            curves[label] = {}
            for k in ks:
                interval = mean_interval(curve[k] for _, curve in found)
                curves[label][k] = (interval.mean, interval.low, interval.high)
            colors[label] = f"C{index % 10}"
            if tag == "first":
                dashed.add(label)
    if not curves:
        return None
    draw_pass_curves(
        curves,
        out / f"{PASS_CURVE}.png",
        "held-out pass@k: first eval (dashed) and last (solid)\nmean over seeds, 95% t band",
        dashed=frozenset(dashed),
        colors=colors,
    )
    return sorted(set(notes))


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.ema < 1:
        raise ValueError(f"--ema: must be in [0, 1), got {args.ema}")
    figures = [name.strip() for name in args.figures.split(",") if name.strip()]
    unknown = [name for name in figures if name not in ALL_FIGURES]
    if unknown or not figures:
        raise ValueError(
            f"--figures: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(ALL_FIGURES)}"
        )
    out = check_output_dir(args.output, "--output")
    runs = parse_runs(args.runs)
    for name, seeds in runs.items():
        kinds = ", ".join(f"{seed.folder} ({seed.kind})" for seed in seeds)
        print(f"[plot] {name}: {kinds}")
    out.mkdir(parents=True, exist_ok=True)
    if {"fig3", "fig4"} <= set(figures):
        print("[plot] note: fig3 and fig4 have the same panels; the paper draws them for different runs")
    for name in figures:
        notes = (
            draw_pass_figure(runs, out)
            if name == PASS_CURVE
            else draw_figure(name, runs, args.ema, out, over_steps=args.ema_over == "steps")
        )
        if notes is None:
            print(f"[plot] {name}: no run logged any of its metrics; not drawn")
            continue
        for note in notes:
            print(f"[plot] note: {note}")
        print(f"[plot] wrote {out / name}.png, .svg, .csv")
    return 0
