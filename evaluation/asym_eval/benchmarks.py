"""Benchmark files: the five shipped with the package, or a user's ``name=path.jsonl``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

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
    if not path.is_file():
        raise ValueError(f"--benchmarks: {name}: no such file {path}")
    raw = path.read_bytes()
    problems = []
    for line_number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            problem, answer = row["problem"], str(row["answer"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path}:{line_number}: need a JSON object with 'problem' and 'answer' ({err})"
            ) from None
        try:
            tolerance = _tolerance(row.get("error"))
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}:{line_number}: 'error' must be a number, got {row.get('error')!r}"
            ) from None
        problems.append(
            Problem(
                problem_id=str(row.get("id", line_number)),
                problem=problem,
                answer=answer,
                multiple_answers=bool(row.get("is_multiple_answer", False)),
                tolerance=tolerance,
            )
        )
    if limit is not None:
        problems = problems[:limit]
    return Benchmark(name, path, tuple(problems), hashlib.sha256(raw).hexdigest())
