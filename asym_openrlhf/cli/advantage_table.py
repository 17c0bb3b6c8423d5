"""``asym-rl advantage-table``: what each rollout gets, for every number of correct rollouts in a group.

Users pick β with this before they spend GPU hours: it prints A_pos and A_neg for c = 0..G correct rollouts
(a table, or JSON with ``--json``) and with ``--plot`` draws the curves against p like Fig. 1(a,b).
"""

from __future__ import annotations

import argparse
import json

from asym_eval.files import check_output_file

from asym_openrlhf.algorithms.advantages import (
    ESTIMATORS,
    PRESETS,
    AdvantageOptions,
    advantage_curves,
    options_at,
)
from asym_openrlhf.cli.flags import add_estimator_flags, estimator_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_estimator_flags(parser, estimator_flags=("--estimator", "--advantage_estimator"), default="asym_grpo")
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="a named AsymGRPO setting (same as --estimator NAME): " + ", ".join(PRESETS),
    )
    parser.add_argument("--group_size", type=int, default=8, help="G, rollouts per prompt (>= 2); default 8.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table.")
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw both curves against p (Fig. 1 a,b); with a beta schedule, at --step, or without it at "
        "the first, middle and last step.",
    )
    parser.add_argument("--list", action="store_true", help="list the registered estimators and exit.")
    parser.add_argument(
        "--step",
        type=int,
        default=None,
        help="with --asym.beta_schedule: the training step (0-based) whose curves to print; default 0.",
    )
    parser.add_argument(
        "--total_steps",
        type=int,
        default=None,
        help="with --asym.beta_schedule: the run's training steps (needed to place --step); --plot then "
        "draws the curves at the first, middle and last step.",
    )


def table_rows(name: str, group_size: int, options: AdvantageOptions) -> list[dict]:
    """One row per c = 0..G; ``None`` where that channel has no rollout (c = 0 positive, c = G negative)."""
    adv_pos, adv_neg = advantage_curves(name, group_size, options)
    return [
        {
            "num_correct": c,
            "p": c / group_size,
            "adv_pos": float(adv_pos[c]) if c > 0 else None,
            "adv_neg": float(adv_neg[c]) if c < group_size else None,
        }
        for c in range(group_size + 1)
    ]


def used_options(name: str, options: AdvantageOptions) -> dict:
    """The options that estimator ``name`` actually uses (a preset's fixed ones included), by name."""
    resolved = ESTIMATORS[name].resolve(options)
    reads = ESTIMATORS[name].reads + tuple(ESTIMATORS[name].fixed)
    return {key: getattr(resolved, key) for key in dict.fromkeys(reads)}


def _settings(name: str, options: AdvantageOptions) -> str:
    """e.g. ``beta_pos=0.9, beta_neg=0.4, flip=none``; a scheduled β at a step reads 0.698, not 0.6979797979."""
    used = used_options(name, options)
    text = (
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in used.items()
    )
    return ", ".join(text) or "no options"


def format_table(name: str, group_size: int, options: AdvantageOptions, rows: list[dict]) -> str:
    lines = [
        f"{name} ({_settings(name, options)}), G = {group_size}",
        "",
        "   c      p    A_pos(correct)   A_neg(wrong)",
    ]
    for row in rows:
        pos = "—" if row["adv_pos"] is None else f"{row['adv_pos']:+.4f}"
        neg = "—" if row["adv_neg"] is None else f"{row['adv_neg']:+.4f}"
        lines.append(f"{row['num_correct']:>4}  {row['p']:.3f}  {pos:>16}  {neg:>13}")
    lines.append("")
    lines.append("— : no rollout of that kind in such a group")
    return "\n".join(lines)


def plot_curves(path: str, name: str, group_size: int, options: AdvantageOptions, title: str = "") -> None:
    """Fig. 1(a,b): A_pos and A_neg against p, with GRPO and REINFORCE for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_pos, ax_neg) = plt.subplots(1, 2, figsize=(10, 4))
    curves = [(name, options, f"{name} ({_settings(name, options)})", "C0", "-")]
    if name != "group_norm":
        curves.append(("group_norm", AdvantageOptions(), "GRPO (group_norm, unbiased std)", "C1", "--"))
    if name != "reinforce_pm1":
        curves.append(("reinforce_pm1", AdvantageOptions(), "REINFORCE (+1/-1)", "C2", ":"))
    for curve_name, opts, label, color, style in curves:
        rows = table_rows(curve_name, group_size, opts)
        pos = [(r["p"], r["adv_pos"]) for r in rows if r["adv_pos"] is not None]
        neg = [(r["p"], r["adv_neg"]) for r in rows if r["adv_neg"] is not None]
        ax_pos.plot(*zip(*pos), style, marker="o", color=color, label=label)
        ax_neg.plot(*zip(*neg), style, marker="o", color=color, label=label)
    _finish(fig, ax_pos, ax_neg, title or f"G = {group_size}", path)


def _finish(fig, ax_pos, ax_neg, title: str, path: str) -> None:
    """Fig. 1(a,b)'s layout: both panels against p, titled, saved and closed."""
    import matplotlib.pyplot as plt

    for ax, panel in ((ax_pos, "(a) correct rollouts: A_pos(p)"), (ax_neg, "(b) wrong rollouts: A_neg(p)")):
        ax.set_xlabel("group accuracy p")
        ax.set_title(panel)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_pos.set_ylabel("advantage")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _schedule_steps(args: argparse.Namespace, options: AdvantageOptions) -> list[int]:
    """``[step]`` to print; validates --step / --total_steps against the schedule (one line naming the flag)."""
    if options.beta_schedule == "constant":
        for flag, value in (("--step", args.step), ("--total_steps", args.total_steps)):
            if value is not None:
                raise ValueError(f"{flag}: only applies with --asym.beta_schedule linear or cosine")
        return [0]
    if args.total_steps is None or args.total_steps < 1:
        raise ValueError("--total_steps: a beta schedule needs the run's number of training steps (>= 1)")
    step = 0 if args.step is None else args.step
    if not 0 <= step < args.total_steps:
        raise ValueError(f"--step: must be in [0, {args.total_steps - 1}] (0-based), got {step}")
    return [step]


def plot_schedule(path: str, name: str, group_size: int, options: AdvantageOptions, total_steps: int) -> None:
    """Both curves at the first, middle and last training step of a β schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_pos, ax_neg) = plt.subplots(1, 2, figsize=(10, 4))
    for step, color in zip(sorted({0, (total_steps - 1) // 2, total_steps - 1}), ("C0", "C1", "C2")):
        at_step = options_at(options, step, total_steps)
        rows = table_rows(name, group_size, at_step)
        label = f"step {step}: beta+ {at_step.beta_pos:.2f}, beta- {at_step.beta_neg:.2f}"
        ax_pos.plot(
            *zip(*[(r["p"], r["adv_pos"]) for r in rows if r["adv_pos"] is not None]),
            "-o",
            color=color,
            label=label,
        )
        ax_neg.plot(
            *zip(*[(r["p"], r["adv_neg"]) for r in rows if r["adv_neg"] is not None]),
            "-o",
            color=color,
            label=label,
        )
    title = f"{name}, {options.beta_schedule} beta schedule over {total_steps} steps, G = {group_size}"
    _finish(fig, ax_pos, ax_neg, title, path)


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name, estimator in ESTIMATORS.items():
            print(f"{name:18} {estimator.description}")
        return 0
    if args.preset is not None:
        args.advantage_estimator = args.preset
    name, scheduled = estimator_from_args(args, group_size=args.group_size)
    steps = _schedule_steps(args, scheduled)
    if args.plot:
        check_output_file(args.plot, "--plot")
    options = options_at(scheduled, steps[0], args.total_steps or 1)
    rows = table_rows(name, args.group_size, options)
    at_step = (
        None if scheduled.beta_schedule == "constant" else {"step": steps[0], "total_steps": args.total_steps}
    )
    if args.json:
        record = {"estimator": name, "group_size": args.group_size, "options": used_options(name, options)}
        print(json.dumps({**record, **(at_step or {}), "rows": rows}, indent=1))
    else:
        print(format_table(name, args.group_size, options, rows))
    if args.plot:
        if at_step is None:
            plot_curves(args.plot, name, args.group_size, options)
        elif args.step is not None:  # the step asked for, as the table shows it
            title = f"{name}, {scheduled.beta_schedule} beta schedule, step {steps[0]} of {args.total_steps}"
            plot_curves(args.plot, name, args.group_size, options, f"{title}, G = {args.group_size}")
        else:
            plot_schedule(args.plot, name, args.group_size, scheduled, args.total_steps)
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0
