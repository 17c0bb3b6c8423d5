"""``asym-eval table``: Table 1 across ``asym-eval run`` / ``select`` outputs, in the paper's column order.

Cells are Avg@k in %, two decimals; Avg is the mean of the five benchmarks (SPEC §6), left empty where a run
lacks one. The best value of each column (among two or more runs) is marked. With ``--paper`` each cell also
gets the paper's number and our difference, for runs whose NAME is a Table 1 row (``asymgrpo``, or the
paper's method name). A run evaluated differently from the paper's protocol (k, temperature, top-p, prompt
format, a problem limit), or graded by another grader version than the other rows, gets a footnote saying
how: its numbers are not silently compared.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from asym_eval.paper import (
    PAPER_PROMPT_FORMAT,
    PAPER_TEMPERATURE,
    PAPER_TOP_P,
    TABLE1,
    TABLE1_COLUMNS,
    paper_row,
)
from asym_eval.scoring import PAPER_BENCHMARKS, display_name
from asym_eval.select import run_folder_name

FORMATS = ("md", "csv", "latex")
COLUMNS = (*TABLE1_COLUMNS, "avg")


@dataclass
class Row:
    name: str
    folder: Path
    scores: dict[str, float]  # benchmark -> Avg@k (%), rounded to the two decimals shown
    config: dict | None  # the run's config.json, None where it is missing
    paper: str | None = None  # Table 1 row key
    notes: list[str] = field(default_factory=list)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--runs: cannot read {path} ({err})") from None


def _winner_folder(out: Path, selection: dict) -> Path:
    """The run folder asym-eval select evaluated the winner in."""
    winner = selection["winner"]
    is_final = bool(selection.get("final")) and winner["checkpoint"] == selection["final"]
    return out / run_folder_name(Path(winner["checkpoint"]), winner["step"], is_final)


def read_row(name: str, folder: Path) -> Row:
    """One run: ``asym-eval run``'s summary.json + config.json, or ``select``'s winner."""
    if (folder / "selection.json").is_file():
        selection = _read_json(folder / "selection.json")
        benchmarks = selection["winner"]["benchmarks"]
        run_folder = _winner_folder(folder, selection)
    elif (folder / "summary.json").is_file():
        benchmarks = _read_json(folder / "summary.json")["benchmarks"]
        run_folder = folder
    else:
        raise ValueError(
            f"--runs: {folder} has no summary.json (asym-eval run) and no selection.json (asym-eval select)"
        )
    config_path = run_folder / "config.json"
    config = _read_json(config_path) if config_path.is_file() else None
    scores = {b: round(benchmarks[b]["avg_at_k"], 2) for b in TABLE1_COLUMNS if b in benchmarks}
    if len(scores) == len(TABLE1_COLUMNS):
        scores["avg"] = round(sum(benchmarks[b]["avg_at_k"] for b in TABLE1_COLUMNS) / len(TABLE1_COLUMNS), 2)
    row = Row(name, folder, scores, config, paper_row(name))
    # k as scored (summary) is what the number means; the config's n is what was sampled, the same here.
    row.notes += [
        f"{display_name(b)} k={benchmarks[b]['k']} (paper {PAPER_BENCHMARKS[b][1]})"
        for b in TABLE1_COLUMNS
        if b in benchmarks and benchmarks[b]["k"] != PAPER_BENCHMARKS[b][1]
    ]
    absent = [display_name(b) for b in TABLE1_COLUMNS if b not in benchmarks]
    if absent:
        row.notes.append(f"not evaluated on {', '.join(absent)}, so no Avg")
    if config is None:
        row.notes.append(f"no {config_path}: sampling settings unknown")
        return row
    settings = config["settings"]
    for key, paper_value, label in (
        ("temperature", PAPER_TEMPERATURE, "temperature"),
        ("top_p", PAPER_TOP_P, "top-p"),
        ("prompt_format", PAPER_PROMPT_FORMAT, "prompt format"),
    ):
        if settings.get(key) != paper_value:
            row.notes.append(f"{label} {settings.get(key)} (paper {paper_value})")
    limits = {spec.get("limit") for b, spec in config["benchmarks"].items() if b in TABLE1_COLUMNS}
    if limits - {None}:
        row.notes.append(f"only the first {', '.join(str(n) for n in sorted(limits - {None}))} problems")
    return row


def read_rows(specs: list[str]) -> list[Row]:
    rows = []
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--runs: expected NAME=OUT, got {spec!r}")
        rows.append(read_row(name, Path(folder)))
    # The paper's grader is not ours; what can be checked is that our rows share one (harness records it).
    versions = {
        row.name: (row.config or {}).get("settings", {}).get("grader_version", "not recorded") for row in rows
    }
    if len(set(versions.values())) > 1:
        shown = ", ".join(f"{name}: {version}" for name, version in versions.items())
        for row in rows:
            row.notes.append(f"grader version {versions[row.name]} (rows differ: {shown})")
    return rows


def best_per_column(rows: list[Row]) -> dict[str, set[str]]:
    """Column -> names of the rows holding its highest (shown) value; empty with fewer than two rows."""
    best = {}
    for column in COLUMNS:
        values = {row.name: row.scores[column] for row in rows if column in row.scores}
        top = max(values.values()) if len(values) > 1 else None
        best[column] = {name for name, value in values.items() if value == top}
    return best


def _paper_value(row: Row, column: str) -> float | None:
    if row.paper is None:
        return None
    _, five, avg = TABLE1[row.paper]
    return avg if column == "avg" else five[TABLE1_COLUMNS.index(column)]


def render(rows: list[Row], fmt: str, with_paper: bool) -> str:
    best = best_per_column(rows)
    footnotes = {row.name: i for i, row in enumerate((r for r in rows if r.notes), start=1)}
    prefix = "$^{{{}}}$ " if fmt == "latex" else "[{}] "
    notes = [
        prefix.format(footnotes[row.name]) + f"{row.name}: " + "; ".join(row.notes)
        for row in rows
        if row.notes
    ]
    if with_paper:
        unmatched = [row.name for row in rows if row.paper is None]
        if unmatched:
            notes.append(
                f"no Table 1 row named {', '.join(unmatched)} (--paper): name a run after one of "
                + ", ".join(TABLE1)
            )
    headers = [display_name(c) if c != "avg" else "Avg" for c in COLUMNS]
    if fmt == "csv":
        return _render_csv(rows, best, with_paper)
    marker = " [{}]" if fmt == "md" else "$^{{{}}}$"
    lines = []
    for row in rows:
        name = row.name if fmt == "md" else _latex_escape(row.name)
        cells = [name + (marker.format(footnotes[row.name]) if row.name in footnotes else "")]
        for column in COLUMNS:
            cells.append(_cell(row, column, row.name in best[column], fmt, with_paper))
        lines.append(cells)
    if fmt == "md":
        text = ["| method | " + " | ".join(headers) + " |", "|---" * (len(headers) + 1) + "|"]
        text += ["| " + " | ".join(cells) + " |" for cells in lines]
        legend = "Avg@k (%); best per column in bold" + (
            "; in brackets: the paper's number, ours minus it" if with_paper else ""
        )
        return "\n".join(text + ["", legend + "."] + ([""] + notes if notes else []))
    text = [
        r"\begin{tabular}{l" + "r" * len(headers) + "}",
        r"\toprule",
        "method & " + " & ".join(headers) + r" \\",
        r"\midrule",
    ]
    text += [" & ".join(cells) + r" \\" for cells in lines]
    text += [r"\bottomrule", r"\end{tabular}"]
    # Footnotes below the table, visible in the document (rows marked $^n$ above).
    text += [r"\par{\footnotesize " + _latex_escape(note) + "}" for note in notes]
    return "\n".join(text)


def _cell(row: Row, column: str, is_best: bool, fmt: str, with_paper: bool) -> str:
    if column not in row.scores:
        return ""
    value = f"{row.scores[column]:.2f}"
    if is_best:
        value = f"**{value}**" if fmt == "md" else rf"\textbf{{{value}}}"
    paper = _paper_value(row, column) if with_paper else None
    if paper is None:
        return value
    diff = row.scores[column] - paper
    return (
        f"{value} ({paper:.2f}, {diff:+.2f})"
        if fmt == "md"
        else rf"{value} {{\scriptsize ({paper:.2f}, ${diff:+.2f}$)}}"
    )


def _latex_escape(text: str) -> str:
    return text.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def _render_csv(rows: list[Row], best, with_paper: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["method"]
    for column in COLUMNS:
        header += [column] + ([f"{column}_paper", f"{column}_diff"] if with_paper else [])
    writer.writerow(header + ["best_in", "notes"])
    for row in rows:
        cells = [row.name]
        for column in COLUMNS:
            value = row.scores.get(column)
            cells.append("" if value is None else f"{value:.2f}")
            if with_paper:
                paper = _paper_value(row, column)
                ok = paper is not None and value is not None
                cells += ["" if paper is None else f"{paper:.2f}", f"{value - paper:+.2f}" if ok else ""]
        cells.append(";".join(c for c in COLUMNS if row.name in best[c]))
        cells.append("; ".join(row.notes))
        writer.writerow(cells)
    return buffer.getvalue()


def table(specs: list[str], fmt: str = "md", with_paper: bool = False) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"--format: one of {', '.join(FORMATS)}, got {fmt!r}")
    names = [spec.partition("=")[0] for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"--runs: each NAME once, {', '.join(repeated)} is repeated")
    return render(read_rows(specs), fmt, with_paper)
