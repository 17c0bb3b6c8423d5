"""``asym-eval plot``: Avg@k bars per benchmark for several runs, and Avg@k against training step."""

from __future__ import annotations

import json
from pathlib import Path

from asym_eval.scoring import display_name


def _read_json(path: Path, flag: str) -> dict:
    if not path.is_file():
        raise ValueError(f"{flag}: {path} not found")
    return json.loads(path.read_text())


def plot_runs(run_specs: list[str], output: str) -> list[str]:
    """Bars of Avg@k per benchmark; returns the (run: benchmark) pairs not evaluated, drawn as n/a."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {}
    for spec in run_specs:
        name, _, folder = spec.rpartition("=")
        folder_path = Path(folder)
        runs[name or folder_path.name] = _read_json(folder_path / "summary.json", "--runs")["benchmarks"]
    benchmarks = list(dict.fromkeys(b for scores in runs.values() for b in scores))
    width = 0.8 / len(runs)
    missing: list[str] = []
    figure, axis = plt.subplots(figsize=(1.6 + 1.4 * len(benchmarks), 4))
    for offset, (name, scores) in enumerate(runs.items()):
        xs = [i + (offset - (len(runs) - 1) / 2) * width for i in range(len(benchmarks))]
        # A benchmark this run never evaluated has no bar and says "n/a": a 0.0 bar would read as a score.
        have = [(x, scores[b]["avg_at_k"]) for x, b in zip(xs, benchmarks) if b in scores]
        bars = axis.bar([x for x, _ in have], [v for _, v in have], width, label=name)
        axis.bar_label(bars, fmt="%.1f", fontsize=7)
        for x, benchmark in zip(xs, benchmarks):
            if benchmark not in scores:
                axis.text(
                    x,
                    0,
                    "n/a",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color=bars.patches[0].get_facecolor() if bars.patches else "gray",
                    rotation=90,
                )
                missing.append(f"{name}: {benchmark}")
    axis.set_xticks(range(len(benchmarks)), [display_name(b) for b in benchmarks])
    axis.set_ylabel("Avg@k (%)")
    axis.legend(fontsize=8)
    if missing:
        axis.set_title(f"n/a: not evaluated ({'; '.join(missing)})", fontsize=8)
    figure.tight_layout()
    figure.savefig(output, dpi=150)
    plt.close(figure)
    return missing


def plot_sweep(folder: str, output: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    selection = _read_json(Path(folder) / "selection.json", "--sweep")
    steps = [row["step"] for row in selection["sweep"]]
    values = [row["avg_at_k"] for row in selection["sweep"]]
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.plot(steps, values, marker="o")
    axis.axvline(selection["winner"]["step"], color="gray", linestyle="--", label="selected")
    axis.set_xlabel("training step")
    axis.set_ylabel(f"{display_name(selection['select_on'])} Avg@k (%)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output, dpi=150)
    plt.close(figure)


def draw_pass_curves(
    curves: dict[str, dict[int, tuple[float, float | None, float | None]]],
    output: Path,
    title: str,
    dashed: frozenset[str] = frozenset(),
    colors: dict[str, str] | None = None,
) -> None:
    """pass@k against k (log2 axis), the figure exploration papers draw, and its CSV beside it.

    ``curves``: label -> {k: (mean, low, high)}, values in [0, 1] or percent as given; low/high None draws no
    band (one run). Labels in ``dashed`` (a starting point, say) are drawn dashed. Writes ``output`` (its
    suffix picks the format) and ``output`` with ``.csv``: label, k, mean, low, high.
    """
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = Path(output)
    figure, axis = plt.subplots(figsize=(6.4, 4.4))
    rows = []
    for index, (label, curve) in enumerate(curves.items()):
        ks = sorted(curve)
        means = [curve[k][0] for k in ks]
        color = (colors or {}).get(label, f"C{index % 10}")
        axis.plot(
            ks, means, marker="o", markersize=3, color=color, label=label,
            linestyle="--" if label in dashed else "-",
        )  # fmt: skip
        if all(curve[k][1] is not None for k in ks):
            axis.fill_between(
                ks, [curve[k][1] for k in ks], [curve[k][2] for k in ks], color=color, alpha=0.15
            )
        rows += [(label, k, *curve[k]) for k in ks]
    axis.set_xscale("log", base=2)
    ks_all = sorted({k for curve in curves.values() for k in curve})
    axis.set_xticks(ks_all, [str(k) for k in ks_all])
    axis.set_xlabel("k (samples per problem)")
    axis.set_ylabel("unbiased pass@k")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output, dpi=120)
    plt.close(figure)
    with open(output.with_suffix(".csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["curve", "k", "mean", "low", "high"])
        writer.writerows(rows)


def plot_pass_curves(run_specs: list[str], output: str) -> None:
    """``asym-eval plot --pass_curve``: per benchmark, pass@k against k for each run (``summary.json``'s
    ``pass_at``, every power of 2 up to its samples); several OUT under one NAME are averaged."""
    by_name: dict[str, list[dict]] = {}
    for spec in run_specs:
        name, _, folder = spec.rpartition("=")
        by_name.setdefault(name or Path(folder).name, []).append(
            _read_json(Path(folder) / "summary.json", "--runs")["benchmarks"]
        )
    benchmarks = list(dict.fromkeys(b for runs in by_name.values() for scores in runs for b in scores))
    output_path = Path(output)
    for benchmark in benchmarks:
        curves = {}
        for name, runs in by_name.items():
            points = [scores[benchmark].get("pass_at", {}) for scores in runs if benchmark in scores]
            ks = sorted(set.intersection(*(set(p) for p in points)), key=int) if points else []
            if ks:
                curves[name] = {int(k): (sum(p[k] for p in points) / len(points), None, None) for k in ks}
        if not curves:
            raise ValueError(
                f"--runs: no run has a pass@k curve for {benchmark} (made before asym-eval logged it?)"
            )
        path = (
            output_path
            if len(benchmarks) == 1
            else output_path.with_name(f"{output_path.stem}_{benchmark}{output_path.suffix}")
        )
        draw_pass_curves(curves, path, f"{display_name(benchmark)}: unbiased pass@k (%)")
