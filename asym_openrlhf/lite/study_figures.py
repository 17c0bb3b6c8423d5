"""The study's figures: Fig. 2 (mean and 95% band over seeds per method), Fig. 1(c), the pass@k curve and the
(β+, β−) heat map."""

from __future__ import annotations

import math
from pathlib import Path

# One atomic write for a run's files and the study's.
from asym_openrlhf.algorithms.metrics import ema
from asym_openrlhf.lite.run_statistics import STAT_LABELS, pass_curve
from asym_openrlhf.lite.stats import Interval, format_interval, mean_interval

# --- figures ---------------------------------------------------------------------------------------------

PANELS = [  # (metric, title, (low, high) bounds of the metric); eval/pass_at_{G} takes the run's G
    ("actor/entropy", "(a) policy entropy", (0.0, None)),
    ("eval/accuracy", "(b) held-out greedy accuracy", (0.0, 1.0)),
    ("rollout/all_solved_frac", "(c) all-solved groups", (0.0, 1.0)),
    ("rollout/none_solved_frac", "(c') none-solved groups", (0.0, 1.0)),
    ("actor/pos_logprob_gain", "(d) log-prob gain of positives", (None, None)),
    ("actor/entropy_pos", "(e) entropy of correct rollouts", (0.0, None)),
    ("actor/entropy_neg", "(f) entropy of wrong rollouts", (0.0, None)),
    ("eval/pass_at_{G}", "(g) held-out pass@G", (0.0, 1.0)),
    ("rollout/unique_correct_frac", "(h) distinct / correct responses", (0.0, 1.0)),
]


def smoothed_curve(rows: list[dict], key: str) -> dict[int, float]:
    """``{step: EMA 0.7}`` of ``key`` over the rows that log it (a step where it is None carries the previous
    smoothed value); steps before its first value are left out."""
    points = [(r["step"], r[key]) for r in rows if key in r]
    smoothed = ema([v for _, v in points])
    return {step: value for (step, _), value in zip(points, smoothed) if value is not None}


def mean_band(
    curves: list[dict[int, float]], bounds: tuple[float | None, float | None] = (None, None)
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps, mean over seeds and the 95% t band (the mean where fewer than 2 seeds have the step). The band
    is clipped to the metric's ``bounds``: with 2 seeds t(0.975, 1) = 12.7, so a fraction's band would run
    from -1 to 1.5, values no run can have; the interval in summary.md stays unclipped."""
    low_bound, high_bound = bounds
    steps = sorted(set().union(*curves))
    means, lows, highs = [], [], []
    for step in steps:
        interval = mean_interval([c[step] for c in curves if step in c])
        low = interval.mean if interval.low is None else interval.low
        high = interval.mean if interval.high is None else interval.high
        means.append(interval.mean)
        lows.append(low if low_bound is None else max(low, low_bound))
        highs.append(high if high_bound is None else min(high, high_bound))
    return steps, means, lows, highs


def plot_fig2(path: Path, rows_by_run: dict[str, dict[int, list[dict]]], group_size: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 5, figsize=(24, 8.5))
    axes = axes.flatten()
    for index, (label, runs) in enumerate(rows_by_run.items()):
        color, style = f"C{index % 10}", "-" if index < 10 else "--"
        for ax, (key, panel_title, bounds) in zip(axes, PANELS):
            key = key.format(G=group_size)
            curves = [c for c in (smoothed_curve(rows, key) for rows in runs.values()) if c]
            if curves:
                steps, means, lows, highs = mean_band(curves, bounds)
                ax.plot(steps, means, color=color, linestyle=style, label=label, linewidth=1.6)
                ax.fill_between(steps, lows, highs, color=color, alpha=0.12)
            ax.set_title(panel_title.replace("pass@G", f"pass@{group_size}") + " (EMA 0.7)", fontsize=10)
            ax.set_xlabel("RL step")
    axes[-1].axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[-1].legend(
        handles,
        labels,
        loc="center",
        fontsize=11,
        title="mean over seeds; band = 95% t interval,\nclipped to the metric's range",
    )
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_fig1c(path: Path, curves: dict[str, list[float | None]], group_size: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for index, (label, curve) in enumerate(curves.items()):
        points = [(c / group_size, v) for c, v in enumerate(curve) if v is not None and 0 < c < group_size]
        ax.plot(
            [p for p, _ in points], [v for _, v in points], marker="o", color=f"C{index % 10}", label=label
        )
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("group accuracy p")
    ax.set_ylabel("Cov(log π̄, A)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pass_curves(
    rows_by_run: dict[str, dict[int, list[dict]]],
) -> tuple[dict[str, dict[int, Interval]], dict[str, dict[int, dict[int, float]]]]:
    """The pass@k curve of the warm start (step 0; the same for every method of a seed) and of each method at
    its last step: ``{curve: {k: mean and 95% t interval over seeds}}``, and the per-seed values behind them.
    Only the k that every seed of a curve logged."""
    per_seed: dict[str, dict[int, dict[int, float]]] = {"warm start": {}}
    for label, runs in rows_by_run.items():
        for seed, rows in runs.items():
            per_seed["warm start"].setdefault(seed, pass_curve(rows[:1]))
            if len(rows) > 1:
                per_seed.setdefault(label, {})[seed] = pass_curve(rows[-1:])
    curves = {}
    for label, seeds in per_seed.items():
        ks = set.intersection(*(set(c) for c in seeds.values())) if seeds else set()
        if ks:
            curves[label] = {k: mean_interval(c[k] for c in seeds.values()) for k in sorted(ks)}
    return curves, per_seed


def plot_grid_heatmap(path: Path, intervals: dict[str, dict[str, Interval]], grid, keys, title: str) -> None:
    """One heat map per statistic over the (β+, β−) cells; each cell shows its mean and 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos = sorted({bp for bp, _ in grid.values()})
    neg = sorted({bn for _, bn in grid.values()})
    fig, axes = plt.subplots(1, len(keys), figsize=(1.0 + 2.6 * len(neg) * len(keys), 1.2 + 1.1 * len(pos)))
    for ax, key in zip([axes] if len(keys) == 1 else axes, keys):
        means = [[math.nan] * len(neg) for _ in pos]
        for label, (bp, bn) in grid.items():
            means[pos.index(bp)][neg.index(bn)] = intervals[label][key].mean
        image = ax.imshow(means, cmap="viridis", origin="lower", aspect="auto")
        fig.colorbar(image, ax=ax, shrink=0.85)
        for label, (bp, bn) in grid.items():
            record = intervals[label][key].to_json()
            text = format_interval(record).replace(" [", "\n[")
            ax.text(neg.index(bn), pos.index(bp), text, ha="center", va="center", fontsize=8, color="white")
        ax.set_xticks(range(len(neg)), [f"{v:g}" for v in neg])
        ax.set_yticks(range(len(pos)), [f"{v:g}" for v in pos])
        ax.set_xlabel("β− (wrong rollouts)")
        ax.set_ylabel("β+ (correct rollouts)")
        ax.set_title(STAT_LABELS[key], fontsize=10)
    fig.suptitle(title + " — mean over seeds [95% t interval]", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
