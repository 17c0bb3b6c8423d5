"""Benchmark files: the five shipped with the package, or a user's ``name=path.jsonl``."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from asym_eval.files import read_jsonl
from asym_eval.scoring import PAPER_BENCHMARKS

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Problem:
    problem_id: str
    problem: str
    answer: str
    multiple_answers: bool = False  # OlympiadBench is_multiple_answer: comma-separated, any order
    tolerance: float | None = None  # OlympiadBench error: absolute numeric tolerance


@dataclass(frozen=True)
class Benchmark:
    name: str
    path: Path
    problems: tuple[Problem, ...]
    sha256: str


def parse_benchmark_spec(spec: str) -> list[tuple[str, Path]]:
    """``math500,aime24`` or ``mine=path.jsonl`` (mixable) -> [(name, path)]."""
    entries = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if "=" in item:
            name, path = item.split("=", 1)
            entries.append((name.strip(), Path(path.strip())))
        elif item in PAPER_BENCHMARKS:
            entries.append((item, DATA_DIR / f"{item}.jsonl"))
        else:
            known = ", ".join(PAPER_BENCHMARKS)
            raise ValueError(f"--benchmarks: unknown benchmark '{item}' (known: {known}; or name=path.jsonl)")
    if not entries:
        raise ValueError("--benchmarks: no benchmark given")
    return entries


def _tolerance(value) -> float | None:
    if value in (None, "", []):
        return None
    return float(value[0] if isinstance(value, list) else value)


def load_benchmark(name: str, path: Path, limit: int | None = None) -> Benchmark:
    """A benchmark file: JSON lines with ``problem`` and ``answer`` (optional ``id``, ``is_multiple_answer``,
    ``error``). Blank lines are skipped (a problem's id defaults to its line number, so ids stay the file's);
    an error names FILE:LINE; a file with no problem is refused."""
    if not path.is_file():
        raise ValueError(f"--benchmarks: {name}: no such file {path}")
    rows, _ = read_jsonl(path)
    problems = []
    for line_number, row in rows:
        if "problem" not in row or "answer" not in row:
            raise ValueError(f"{path}:{line_number}: need a JSON object with 'problem' and 'answer'")
        try:
            tolerance = _tolerance(row.get("error"))
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}:{line_number}: 'error' must be a number, got {row.get('error')!r}"
            ) from None
        if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
            raise ValueError(f"{path}:{line_number}: 'error' must be a finite number >= 0, got {tolerance}")
        problems.append(
            Problem(
                problem_id=str(row.get("id", line_number)),
                problem=str(row["problem"]),
                answer=str(row["answer"]),
                multiple_answers=bool(row.get("is_multiple_answer", False)),
                tolerance=tolerance,
            )
        )
    if not problems:
        raise ValueError(f"--benchmarks: {name}: {path} holds no problem (an empty file scores nothing)")
    if limit is not None:
        problems = problems[:limit]
    return Benchmark(name, path, tuple(problems), hashlib.sha256(path.read_bytes()).hexdigest())
