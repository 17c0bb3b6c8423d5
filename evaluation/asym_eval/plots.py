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
