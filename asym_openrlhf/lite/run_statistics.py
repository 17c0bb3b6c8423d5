"""What one run of the study contributes: each statistic of ``STATISTICS`` computed once per run from its logged
rows (``metrics.jsonl``, ``heldout.jsonl``), and Fig. 1(c)'s covariance by group accuracy."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

# One atomic write for a run's files and the study's.
from asym_openrlhf.algorithms.metrics import ema
from asym_openrlhf.lite.stats import finite

COV_STEPS = 40  # Fig. 1(c) averages the first 40 steps


# --- per-run statistics ----------------------------------------------------------------------------------

# key -> (column label, exact definition over one run of N steps). "Second half" = steps floor(N/2)+1..N.
STATISTICS = {
    "val_acc_ema": (
        "val. acc. (EMA 0.7, end)",
        "held-out greedy accuracy (eval/accuracy) at the eval points, EMA 0.7 as the paper smooths it; "
        "last value",
    ),
    "pass_at_1_ema": (
        "pass@1 (EMA 0.7, end)",
        "held-out unbiased pass@1 (eval/pass_at_1) from G samples at the rollout temperature, EMA 0.7; "
        "last value",
    ),
    "pass_at_G_ema": (
        "pass@G (EMA 0.7, end)",
        "held-out unbiased pass@G (eval/pass_at_{G}) from the same G samples, EMA 0.7; last value",
    ),
    "pass_at_1_end": (
        "pass@1 (end, n samples)",
        "held-out unbiased pass@1 at the last step from n samples per prompt at the rollout temperature "
        "(n = --pass_curve_samples, or G), not smoothed",
    ),
    "pass_at_n_end": (
        "pass@n (end)",
        "held-out unbiased pass@n at the last step from the same n samples (k = n: any of the n correct)",
    ),
    "pass_at_n_change": (
        "pass@n, end − start",
        "pass@n at the last step minus pass@n of the warm start (step 0, the same n and prompts)",
    ),
    "train_acc_late": (
        "train reward (2nd half)",
        "mean of rollout/accuracy over the second half of the steps",
    ),
    "unique_correct_late": (
        "distinct/correct (2nd half)",
        "mean of rollout/unique_correct_frac (over groups with a correct rollout: distinct correct "
        "responses / correct ones) over the second half of the steps",
    ),
    "entropy_late": ("entropy (2nd half)", "mean of actor/entropy over the second half of the steps"),
    "entropy_pos_late": (
        "entropy, correct (2nd half)",
        "mean of actor/entropy_pos (token-mean entropy over correct rollouts) over the second-half steps "
        "that have a correct rollout",
    ),
    "entropy_neg_late": (
        "entropy, wrong (2nd half)",
        "mean of actor/entropy_neg (token-mean entropy over wrong rollouts) over the second-half steps "
        "that have a wrong rollout",
    ),
    "all_solved": ("all-solved frac", "mean of rollout/all_solved_frac over all steps"),
    "none_solved": ("none-solved frac", "mean of rollout/none_solved_frac over all steps"),
    "pos_logprob_gain": (
        "pos. log-prob gain",
        "mean of actor/pos_logprob_gain over the steps with a correct rollout",
    ),
    "cov_spearman": (
        "ρ(p, Cov)",
        f"Spearman correlation of group accuracy p = c/G (0 < c < G) with actor/logp_adv_cov/c{{c}} averaged "
        f"over steps 1..min({COV_STEPS}, N) (Fig. 1c); needs 3 such c",
    ),
}
STAT_LABELS = {key: label for key, (label, _) in STATISTICS.items()}
TABLES = {
    "Accuracy and exploration": [
        "val_acc_ema", "pass_at_1_ema", "pass_at_G_ema", "train_acc_late", "unique_correct_late"
    ],
    "The pass@k curve's ends": ["pass_at_1_end", "pass_at_n_end", "pass_at_n_change"],
    "Entropy and group dynamics": [
        "entropy_late", "entropy_pos_late", "entropy_neg_late", "all_solved", "none_solved",
        "pos_logprob_gain", "cov_spearman",
    ],
}  # fmt: skip


def load_rows(run_dir: Path) -> list[dict]:
    text = (run_dir / "metrics.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def covariance_by_p(rows_list: list[list[dict]], group_size: int) -> list[float | None]:
    """Fig. 1(c): mean of ``actor/logp_adv_cov/c{c}`` over the first 40 steps and the given runs, c = 0..G."""
    curve = []
    for c in range(group_size + 1):
        values = [
            r[f"actor/logp_adv_cov/c{c}"]
            for rows in rows_list
            for r in rows
            if 1 <= r["step"] <= COV_STEPS and f"actor/logp_adv_cov/c{c}" in r
        ]
        curve.append(statistics.fmean(values) if values else None)
    return curve


def _spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(values):
        order = sorted(range(len(values)), key=values.__getitem__)
        result = [0.0] * len(values)
        for rank, index in enumerate(order):
            result[index] = float(rank)
        return result

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / den if den else 0.0


def covariance_spearman(curve: list[float | None], group_size: int) -> float:
    """Spearman ρ of p = c/G with Cov(p) over the mixed groups 0 < c < G present; NaN with fewer than 3."""
    points = [(c / group_size, v) for c, v in enumerate(curve) if v is not None and 0 < c < group_size]
    if len(points) < 3:
        return math.nan
    return _spearman([p for p, _ in points], [v for _, v in points])


def pass_curve(rows: list[dict]) -> dict[int, float]:
    """``{k: eval/pass_at_k}`` of the last of ``rows`` (a run's step 0 or its last step)."""
    prefix = "eval/pass_at_"
    row = rows[-1] if rows else {}
    return {int(key[len(prefix) :]): v for key, v in row.items() if key.startswith(prefix) and finite(v)}


def run_statistics(rows: list[dict], group_size: int) -> dict[str, float]:
    """``STATISTICS`` of one run from its metric rows (NaN where the run logged nothing to compute it from),
    plus the warm start's held-out metrics (``*_start``, step 0)."""
    steps = [r for r in rows if r["step"] >= 1]
    late = steps[len(steps) // 2 :]

    def mean_of(key: str, subset: list[dict]) -> float:
        values = [r[key] for r in subset if r.get(key) is not None]
        return statistics.fmean(values) if values else math.nan

    def at_evals(key: str) -> list[float]:
        return [r[key] for r in rows if r.get(key) is not None]

    def ema_end(key: str) -> float:
        values = at_evals(key)
        return ema(values)[-1] if values else math.nan

    def start(key: str) -> float:
        return rows[0][key] if rows and rows[0]["step"] == 0 and rows[0].get(key) is not None else math.nan

    pass_g = f"eval/pass_at_{group_size}"
    start_curve, end_curve = pass_curve(rows[:1]), pass_curve(rows[-1:]) if len(rows) > 1 else {}
    n_end = max(end_curve, default=None)
    return {
        "val_acc_ema": ema_end("eval/accuracy"),
        "pass_at_1_ema": ema_end("eval/pass_at_1"),
        "pass_at_G_ema": ema_end(pass_g),
        "pass_at_1_end": end_curve.get(1, math.nan),
        "pass_at_n_end": end_curve.get(n_end, math.nan),
        "pass_at_n_change": end_curve.get(n_end, math.nan) - start_curve.get(n_end, math.nan),
        "train_acc_late": mean_of("rollout/accuracy", late),
        "unique_correct_late": mean_of("rollout/unique_correct_frac", late),
        "entropy_late": mean_of("actor/entropy", late),
        "entropy_pos_late": mean_of("actor/entropy_pos", late),
        "entropy_neg_late": mean_of("actor/entropy_neg", late),
        "all_solved": mean_of("rollout/all_solved_frac", steps),
        "none_solved": mean_of("rollout/none_solved_frac", steps),
        "pos_logprob_gain": mean_of("actor/pos_logprob_gain", steps),
        "cov_spearman": covariance_spearman(covariance_by_p([rows], group_size), group_size),
        "val_acc_start": start("eval/accuracy"),
        "pass_at_1_start": start("eval/pass_at_1"),
        "pass_at_G_start": start(pass_g),
    }


def run_summaries(
    rows_by_run: dict[str, dict[int, list[dict]]], group_size: int
) -> dict[str, dict[str, dict[int, float]]]:
    """Per method, per statistic, ``{seed: value}``."""
    per_seed: dict[str, dict[str, dict[int, float]]] = {}
    for label, runs in rows_by_run.items():
        for seed, rows in runs.items():
            for key, value in run_statistics(rows, group_size).items():
                per_seed.setdefault(label, {}).setdefault(key, {})[seed] = value
    return per_seed
