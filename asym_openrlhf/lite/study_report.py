"""The study's ``summary.md`` and ``summary.json``: per-method tables with intervals, the claims with their
verdicts (uncorrected and Holm), the pass@k table and the β map, with every definition written out."""

from __future__ import annotations

import json
from pathlib import Path

# One atomic write for a run's files and the study's.
from asym_eval.files import write_atomic

from asym_openrlhf.lite.claims import check_claims, claims_not_judged
from asym_openrlhf.lite.run_statistics import (
    COV_STEPS,
    STAT_LABELS,
    STATISTICS,
    TABLES,
    covariance_by_p,
    run_summaries,
)
from asym_openrlhf.lite.stats import EQUIVALENCE_MARGIN, VERDICTS, finite, format_interval, mean_interval
from asym_openrlhf.lite.study_figures import pass_curves, plot_fig1c, plot_fig2, plot_grid_heatmap

# --- the report ------------------------------------------------------------------------------------------


def _json_value(value):
    return value if finite(value) else None


VERDICT_RULE = (
    "Seeds are the unit: each statistic is computed once per run. A claim *a > b* (or *a < b*) is judged by "
    "the 95% Student t interval of the difference a − b: paired by seed when both methods ran the same seeds "
    "(seed s shares its warm start, prompt order and step-1 rollouts across methods), Welch's unpaired "
    "interval otherwise. The claim **holds** when the interval excludes 0 on the claimed side, is "
    "**contradicted** when it excludes 0 on the other side, and is **undecided** otherwise. A claim *a matches "
    f"b* holds when the interval lies inside ±{EQUIVALENCE_MARGIN} and is contradicted when it lies beyond. "
    "Each verdict is decided exactly when its p-value is below 0.05. *Holm* gives the verdict after Holm's "
    "step-down correction across all the claims judged in this report (family-wise error 5%): a decided "
    "verdict whose p-value does not survive becomes undecided."
)


def task_label(task: str, tiny: bool) -> str:
    names = {"addition": "one-digit addition" if tiny else "1-2 digit addition", "countdown": "Countdown"}
    return names.get(task, task) + (" (quick-tier model)" if tiny else "")


def report(
    out: Path,
    rows_by_run: dict[str, dict[int, list[dict]]],
    settings_note: str,
    group_size: int,
    task: str = "addition",
    title: str | None = None,
    grid: dict[str, tuple[float, float]] | None = None,
) -> str:
    """Figures, ``summary.md`` and ``summary.json`` from the runs ``rows_by_run[method][seed]``; with ``grid``
    ({label: (β+, β−)}, labels among the methods) also the β heat map and ``grid.csv``."""
    from asym_eval.plots import draw_pass_curves

    title = title or task
    grid = grid or {}
    per_seed = run_summaries(rows_by_run, group_size)
    intervals = {
        label: {key: mean_interval(values.values()) for key, values in stats.items()}
        for label, stats in per_seed.items()
    }
    verdicts = check_claims(per_seed, task)
    not_judged = claims_not_judged(per_seed, task)
    cov_curves = {
        label: covariance_by_p(list(runs.values()), group_size) for label, runs in rows_by_run.items()
    }
    # The steps Fig. 1(c) averages: the first 40, or all of a shorter run.
    last_step = max(
        (row["step"] for runs in rows_by_run.values() for rows in runs.values() for row in rows), default=0
    )
    cov_steps = min(COV_STEPS, last_step)
    plot_fig2(out / "fig2_dynamics.png", rows_by_run, group_size, f"Fig. 2 on the embedded testbed: {title}")
    plot_fig1c(
        out / "fig1c_covariance.png",
        cov_curves,
        group_size,
        f"Fig. 1(c), {title}: Cov by group accuracy, first {cov_steps} steps",
    )

    lines = [
        f"# Entropy study on the embedded testbed: {title}\n\n{settings_note}\n",
        "## Per method: mean over seeds [95% t interval]\n",
        "Each statistic is computed once per run; the interval is mean ± t(0.975, n−1)·sd/√n over the n "
        "seeds.\n",
    ]
    for heading, keys in TABLES.items():
        lines.append(f"### {heading}\n")
        lines.append("| method | " + " | ".join(STAT_LABELS[k] for k in keys) + " |")
        lines.append("|---" * (len(keys) + 1) + "|")
        for label, by_key in intervals.items():
            lines.append(
                f"| {label} | " + " | ".join(format_interval(by_key[k].to_json()) for k in keys) + " |"
            )
        lines.append("")
    lines.append("Definitions (N steps per run; second half = steps ⌊N/2⌋+1..N):\n")
    lines += [f"- **{label}**: {definition}" for label, definition in STATISTICS.values()]
    warm = {
        key: mean_interval(v for stats in per_seed.values() for v in stats[key].values()).mean
        for key in ("val_acc_start", "pass_at_1_start", "pass_at_G_start")
    }
    held_out = ", ".join(
        f"{name} {warm[key]:.3f}"
        for key, name in (
            ("val_acc_start", "greedy accuracy"),
            ("pass_at_1_start", "pass@1"),
            ("pass_at_G_start", f"pass@{group_size}"),
        )
        if finite(warm[key])
    )
    lines.append(f"\nWarm start, held out: {held_out}.\n")
    curves, curve_per_seed = pass_curves(rows_by_run)
    if curves:
        draw_pass_curves(
            {
                label: {k: (i.mean, i.low, i.high) for k, i in curve.items()}
                for label, curve in curves.items()
            },
            out / "pass_at_k.png",
            f"{title}: held-out pass@k at the warm start (dashed) and the end of training\n"
            "mean over seeds, 95% t band",
            dashed=frozenset({"warm start"}),
            colors={"warm start": "black"},
        )
        ks = sorted({k for curve in curves.values() for k in curve})
        lines.append("## The pass@k curve: the warm start and the end of training\n")
        lines.append(
            "Unbiased pass@k from n samples per held-out prompt at the rollout temperature; mean over seeds "
            "[95% t interval]. Figure: `pass_at_k.png`, values: `pass_at_k.csv`.\n"
        )
        lines.append("| | " + " | ".join(f"pass@{k}" for k in ks) + " |")
        lines.append("|---" * (len(ks) + 1) + "|")
        for label, curve in curves.items():
            cells = [format_interval(curve[k].to_json()) if k in curve else "" for k in ks]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    if grid:
        grid_keys = ("val_acc_ema", "pass_at_n_end")
        plot_grid_heatmap(out / "beta_grid.png", intervals, grid, grid_keys, f"(β+, β−) grid on {title}")
        csv_lines = ["beta_pos,beta_neg,statistic,mean,low,high,seeds"]
        for label, (bp, bn) in grid.items():
            for key in grid_keys:
                record = intervals[label][key].to_json()
                low, high = record["ci95"] or (None, None)
                csv_lines.append(f"{bp:g},{bn:g},{key},{record['mean']},{low},{high},{record['n']}")
        write_atomic(out / "grid.csv", "\n".join(csv_lines) + "\n")
        lines.append("## The (β+, β−) grid\n")
        lines.append("Heat map: `beta_grid.png`, values: `grid.csv`. Mean over seeds [95% t interval].\n")
        negs = sorted({n for _, n in grid.values()})
        header = " / ".join(STAT_LABELS[k] for k in grid_keys)
        lines.append(f"| β+ \\ β− ({header}) | " + " | ".join(f"{bn:g}" for bn in negs) + " |")
        lines.append("|---" * (len(negs) + 1) + "|")
        cells = {cell: label for label, cell in grid.items()}
        for bp in sorted({p for p, _ in grid.values()}):
            row = []
            for bn in negs:
                label = cells.get((bp, bn))
                row.append(
                    ""
                    if label is None
                    else " / ".join(format_interval(intervals[label][k].to_json()) for k in grid_keys)
                )
            lines.append(f"| {bp:g} | " + " | ".join(row) + " |")
        lines.append("")
    lines.append("## The paper's claims (TAKEAWAY, §3) on this testbed\n")
    lines.append(VERDICT_RULE + "\n")
    for v in verdicts:
        difference = v["difference"]
        baseline = "0" if v["b"] is None else f"{v['b']} {v['mean_b']:.3f}"
        pairing = (
            f"paired, {difference['n']} seeds"
            if difference.get("paired")
            else f"unpaired, n = {difference['n']}"
        )
        needs = (
            f"; sd of the paired differences {v['sd_paired']:.4f}: ±{EQUIVALENCE_MARGIN} needs "
            f"{v['seeds_for_target']} seeds"
            if v["verdict"] == "undecided"
            and v["seeds_for_target"] is not None
            and v["statistic"].startswith(("val_acc", "pass_at"))  # the target is on the probability scale
            else ""
        )
        lines.append(
            f"- **{v['verdict']}** (Holm: {v['verdict_holm']}): {v['claim']} — {STAT_LABELS[v['statistic']]}: "
            f"{v['a']} {v['mean_a']:.3f} vs {baseline}; a − b = {format_interval(difference, 4, signed=True)} "
            f"({pairing}; p = {v['p_value']:.3g}{needs})"
        )
    if not_judged:
        lines.append(
            f"\nNot judged on {task} (one correct response per prompt, so distinct / correct responses "
            "measures accuracy, not diversity): " + "; ".join(not_judged) + "."
        )
    counts = {name: sum(v["verdict"] == name for v in verdicts) for name in VERDICTS}
    counts_holm = {name: sum(v["verdict_holm"] == name for v in verdicts) for name in VERDICTS}
    lines.append(
        "\nIn all: "
        + ", ".join(f"{n} {name}" for name, n in counts.items())
        + f"; after Holm's correction across these {len(verdicts)} claims: "
        + ", ".join(f"{n} {name}" for name, n in counts_holm.items())
        + "."
    )
    lines.append(
        "\nFigures: `fig2_dynamics.png` (Fig. 2 panels, entropy of correct and of wrong rollouts, pass@G, "
        "distinct correct responses), `fig1c_covariance.png` (Fig. 1c).\n"
    )
    text = "\n".join(lines)
    write_atomic(out / "summary.md", text)
    summary = {
        "task": task,
        "settings": settings_note,
        "interval": "95% Student t interval over seeds; claims: the interval of a - b, paired by seed",
        "verdict_rule": VERDICT_RULE,
        "statistics": {key: definition for key, (_, definition) in STATISTICS.items()},
        "stats": {
            label: {key: interval.to_json() for key, interval in by_key.items()}
            for label, by_key in intervals.items()
        },
        "per_seed": {
            label: {key: {str(s): _json_value(v) for s, v in values.items()} for key, values in stats.items()}
            for label, stats in per_seed.items()
        },
        "claims": [
            {
                **v,
                "mean_a": _json_value(v["mean_a"]),
                "mean_b": _json_value(v["mean_b"]),
                "sd_paired": _json_value(v["sd_paired"]),
            }
            for v in verdicts
        ],
        "claims_not_judged": not_judged,
        "cov_by_p": cov_curves,
        "pass_curves": {
            label: {str(k): i.to_json() for k, i in curve.items()} for label, curve in curves.items()
        },
        "pass_curves_per_seed": {
            label: {str(seed): {str(k): v for k, v in c.items()} for seed, c in seeds.items()}
            for label, seeds in curve_per_seed.items()
        },
        "grid": {label: list(cell) for label, cell in grid.items()},
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    return text
