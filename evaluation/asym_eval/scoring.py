"""Avg@k, pass@k and the Table 1 layout.

Avg@k (SPEC §6) = mean over problems of (correct samples / k). pass@k is the unbiased estimator of Chen et al.
(2021): for a problem with n samples of which c are correct, 1 - C(n-c, k) / C(n, k); with k = n it is
"at least one of the n samples is correct".

>>> avg_at_k([[1, 0, 0, 0], [1, 1, 1, 1]])
0.625
>>> pass_at_k(n=4, c=1, k=2)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
0.5
>>> pass_k_values(12)  # every power of 2 up to n, and n
[1, 2, 4, 8, 12]
"""

from __future__ import annotations

from math import comb

# The paper's benchmarks, in Table 1's order, with their display names and default k (SPEC §6).
PAPER_BENCHMARKS = {
    "math500": ("MATH-500", 5),
    "aime24": ("AIME24", 10),
    "aime25": ("AIME25", 10),
    "amc23": ("AMC23", 10),
    "olympiadbench": ("Olympiad", 5),
}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if not 0 < k <= n:
        raise ValueError(f"pass@k needs 0 < k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def avg_at_k(correct_by_problem: list[list[int]]) -> float:
    """Mean over problems of the fraction of correct samples."""
    if not correct_by_problem:
        return 0.0
    return sum(sum(row) / len(row) for row in correct_by_problem) / len(correct_by_problem)


def mean_pass_at_k(correct_by_problem: list[list[int]], k: int) -> float:
    if not correct_by_problem:
        return 0.0
    return sum(pass_at_k(len(row), sum(row), k) for row in correct_by_problem) / len(correct_by_problem)


def pass_k_values(n: int) -> list[int]:
    """The k of a pass@k curve from n samples per problem: 1, 2, 4, ... up to n, and n itself."""
    if n < 1:
        raise ValueError(f"pass@k needs n >= 1 samples, got {n}")
    return sorted({2**e for e in range(n.bit_length()) if 2**e <= n} | {n})


def pass_at_k_curve(correct_by_problem: list[list[int]]) -> dict[int, float]:
    """``{k: mean unbiased pass@k}`` for every k of ``pass_k_values(n)``, n the fewest samples of a problem
    (so that every problem has an unbiased estimate at every k)."""
    if not correct_by_problem:
        return {}
    n = min(len(row) for row in correct_by_problem)
    return {k: mean_pass_at_k(correct_by_problem, k) for k in pass_k_values(n)}


def benchmark_scores(correct_by_problem: list[list[int]], k: int) -> dict:
    """Percentages, as in Table 1; ``pass_at`` is the pass@k curve over every power of 2 up to the samples."""
    return {
        "k": k,
        "problems": len(correct_by_problem),
        "samples": sum(len(row) for row in correct_by_problem),
        "avg_at_k": 100.0 * avg_at_k(correct_by_problem),
        "pass_at_k": 100.0 * mean_pass_at_k(correct_by_problem, k),
        "pass_at_1": 100.0 * mean_pass_at_k(correct_by_problem, 1),
        "pass_at": {str(kk): 100.0 * v for kk, v in pass_at_k_curve(correct_by_problem).items()},
    }


def display_name(benchmark: str) -> str:
    return PAPER_BENCHMARKS.get(benchmark, (benchmark, 0))[0]


def markdown_table(rows: dict[str, dict[str, dict]], with_pass_at_k: bool = True) -> str:
    """``rows``: run name -> benchmark -> scores. Columns as in Table 1 (Avg@k per benchmark, then the mean),
    then pass@k per benchmark when asked."""
    benchmarks = list(dict.fromkeys(b for scores in rows.values() for b in scores))
    header = ["method"] + [f"{display_name(b)} (Avg@{_k(rows, b)})" for b in benchmarks] + ["Avg"]
    if with_pass_at_k:
        header += [f"{display_name(b)} (pass@{_k(rows, b)})" for b in benchmarks]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, scores in rows.items():
        avgs = [scores[b]["avg_at_k"] if b in scores else None for b in benchmarks]
        present = [value for value in avgs if value is not None]
        cells = [name] + [_fmt(v) for v in avgs] + [_fmt(sum(present) / len(present) if present else None)]
        if with_pass_at_k:
            cells += [_fmt(scores[b]["pass_at_k"] if b in scores else None) for b in benchmarks]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _k(rows, benchmark) -> int:
    return next(scores[benchmark]["k"] for scores in rows.values() if benchmark in scores)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def pass_curve_table(scores: dict[str, dict]) -> str:
    """One run's pass@k curve per benchmark (``benchmark_scores``' ``pass_at``), in percent, k as columns."""
    ks = sorted({int(k) for s in scores.values() for k in s.get("pass_at", {})})
    lines = ["| benchmark | " + " | ".join(f"pass@{k}" for k in ks) + " |", "|" + "---|" * (len(ks) + 1)]
    for benchmark, s in scores.items():
        cells = [_fmt(s.get("pass_at", {}).get(str(k))) for k in ks]
        lines.append(f"| {display_name(benchmark)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
