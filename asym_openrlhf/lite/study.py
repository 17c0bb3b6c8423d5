"""``asym-rl study``: the paper's §3 entropy study on the embedded testbed.

Runs several estimators from the same warm start and seeds with ``asym-rl lite``'s trainer on one task
(``--task addition``, the default, or ``countdown``), then draws Fig. 2 (entropy overall and on correct /
wrong rollouts, held-out accuracy and pass@G, all-/none-solved fractions, distinct correct responses,
log-prob gain of positives) and Fig. 1(c) (Cov(p) over the first 40 steps, or all of a shorter run), and judges the paper's claims
(TAKEAWAY, §3) against the data: each verdict is computed, none is assumed.

Seeds are the unit of replication. Each statistic is computed once per run (``STATISTICS`` defines each over
the run) and reported per method as the mean over seeds with a 95% Student t interval. Each claim "a > b" is
judged by the 95% t interval of the difference a - b, paired by seed: seed s of every method starts from the
same warm start, draws the same prompts in the same order and, at step 1, the same rollouts. The claim
"holds" when that interval excludes 0 on the claimed side, is "contradicted" when it excludes 0 on the other
side, and is "undecided" otherwise. A t interval rather than a bootstrap: with 4-6 seeds, bootstrap
percentiles come from a handful of distinct resamples and come out too narrow.

Runs are independent folders under ``OUTPUT/runs``; a finished run is skipped and a killed one resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

# One atomic write for a run's files and the study's.
from asym_eval.files import check_output_dir, write_atomic

from asym_openrlhf.algorithms.metrics import ema

# label -> settings overrides (flag dests of ``asym-rl lite``). REINFORCE + entropy regularization takes its
# coefficient from --entropy_coef (default 0.01, ten times the paper's; untuned here, see docs/lite.md).
METHODS = {
    "REINFORCE": dict(advantage_estimator="reinforce_pm1"),
    "GRPO": dict(advantage_estimator="group_norm"),
    "Pos-only": dict(advantage_estimator="pos_only"),
    "Neg-only": dict(advantage_estimator="neg_only"),
    "AsymGRPO": dict(advantage_estimator="main"),
    "EntIncrease": dict(advantage_estimator="ent_increase"),
    "EntDecrease": dict(advantage_estimator="ent_decrease"),
    "REINFORCE+EntReg": dict(
        advantage_estimator="reinforce_pm1", entropy_coef=None
    ),  # coef from --entropy_coef
    # Beyond the paper (Zhu et al. 2025), on request with --methods: REINFORCE with weighted channels.
    "W-REINFORCE": dict(advantage_estimator="w_reinforce"),
    "PSR": dict(advantage_estimator="psr"),
    "NSR": dict(advantage_estimator="nsr"),
    # Beyond the paper: AsymGRPO (0.9, 0.4) with a moving beta, and token-level entropy control.
    "AsymGRPO-sched": dict(
        advantage_estimator="asym_grpo", asym_beta_schedule="linear", asym_beta_pos_end=0.3
    ),  # beta+ 0.9 -> 0.3 over the run
    "AsymGRPO-targetH": dict(
        advantage_estimator="asym_grpo", asym_target_entropy=0.2, asym_adapt_rate=1.0
    ),  # hold entropy near 0.2 nats, about the default model's start
    # verl's ratio 2e-4 is for batches of millions of tokens; ~700 per micro-batch here would give 1 token.
    "Clip-Cov": dict(advantage_estimator="main", cov_mode="clip_cov", cov_ratio=0.02),
    "KL-Cov": dict(advantage_estimator="main", cov_mode="kl_cov", cov_ratio=0.02),
    "Top-entropy": dict(advantage_estimator="main", top_entropy_rho=0.2),
}
# The paper's Section 3 set: what the study runs by default. The rest run on request (--methods).
BEYOND_THE_PAPER = (
    "W-REINFORCE", "PSR", "NSR", "AsymGRPO-sched", "AsymGRPO-targetH", "Clip-Cov", "KL-Cov", "Top-entropy"
)  # fmt: skip
DEFAULT_METHODS = [label for label in METHODS if label not in BEYOND_THE_PAPER]
# Quick: 8 methods x 4 seeds = 32 runs, two at a time. Measured on this 2-core box before the faster step
# loop: 0.72-0.77 s CPU a step, 0.4 s a greedy eval (256 prompts), +0.4 s for pass@k on 32 prompts x G; about
# 35 s a run at 40 steps (9.3 min in all), 25 s (6.7 min) at the 0.5 s a step the faster trainer aims for.
# The full tier also samples n = 64 per held-out prompt at the start and the end, for the pass@k curve.
BUDGETS = {
    "quick": dict(steps=40, seeds=4, eval_every=10, eval_sampled_prompts=32, pass_curve_samples=0),
    "full": dict(steps=200, seeds=6, eval_every=10, eval_sampled_prompts=64, pass_curve_samples=64),
}
_QUICK, _FULL = BUDGETS["quick"], BUDGETS["full"]
STUDY_TASKS = ("addition", "countdown")
GRID_DEFAULTS = {"beta_pos": 0.9, "beta_neg": 0.4}  # the paper's AsymGRPO, where a --grid axis is left out


def grid_label(beta_pos: float, beta_neg: float) -> str:
    """A grid cell's method label and run-folder stem."""
    return f"asym({beta_pos:g},{beta_neg:g})"


def parse_grid(specs: list[str]) -> dict[str, tuple[float, float]]:
    """``["beta_pos=0.3,0.9", "beta_neg=0.4"]`` -> ``{label: (beta_pos, beta_neg)}``, beta+ outer, in order.

    >>> parse_grid(["beta_pos=0.3,0.9"])
    {'asym(0.3,0.4)': (0.3, 0.4), 'asym(0.9,0.4)': (0.9, 0.4)}
    """
    axes: dict[str, list[float]] = {}
    for spec in specs:
        axis, sep, values = spec.partition("=")
        if not sep or axis not in GRID_DEFAULTS:
            raise ValueError(f"--grid: expected beta_pos=V1,V2,... or beta_neg=V1,V2,..., got {spec!r}")
        if axis in axes:
            raise ValueError(f"--grid: {axis} given twice")
        try:
            axes[axis] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--grid: {axis}: not a list of numbers: {values!r}") from None
        if not axes[axis] or not all(0 <= v <= 4 for v in axes[axis]):
            raise ValueError(f"--grid: {axis}: needs values in [0, 4], got {values!r}")
    pos = axes.get("beta_pos", [GRID_DEFAULTS["beta_pos"]])
    neg = axes.get("beta_neg", [GRID_DEFAULTS["beta_neg"]])
    return {grid_label(bp, bn): (bp, bn) for bp in dict.fromkeys(pos) for bn in dict.fromkeys(neg)}


# Tasks with one correct response per prompt: there, distinct / correct responses is solved groups / correct
# rollouts, a function of accuracy, so the claims about distinct correct solutions are not judged.
ONE_ANSWER_TASKS = {"addition"}
COV_STEPS = 40  # Fig. 1(c) averages the first 40 steps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task",
        choices=STUDY_TASKS,
        default="addition",
        help="the embedded task: addition (default; one correct answer per prompt) or countdown (many)",
    )
    parser.add_argument(
        "--output_dir",
        default=None,
        help="where runs, figures and the summary go; default outputs/study (addition), outputs/study_<task>",
    )
    parser.add_argument(
        "--budget",
        choices=list(BUDGETS),
        default="quick",
        help=f"quick (default: {_QUICK['steps']} steps x {_QUICK['seeds']} seeds; 8 methods took 4.5 min on 2 "
        f"cores) or full ({_FULL['steps']} steps x {_FULL['seeds']} seeds; 41 min on addition, about 1 h on "
        "Countdown, on 2 cores; resumable)",
    )
    parser.add_argument(
        "--quick", dest="budget", action="store_const", const="quick", help="same as --budget quick"
    )
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated subset of: {', '.join(METHODS)}; default: the paper's {', '.join(DEFAULT_METHODS)} "
        "(none with --grid)",
    )
    parser.add_argument(
        "--grid",
        nargs="+",
        default=None,
        metavar="AXIS=V1,V2,...",
        help="a (beta+, beta-) grid of AsymGRPO runs beside --methods: beta_pos=... beta_neg=... (each in [0, 4]; "
        f"an axis left out stays at the paper's {GRID_DEFAULTS['beta_pos']} / {GRID_DEFAULTS['beta_neg']}); "
        "the report adds a heat map of final accuracy and pass@n with each cell's interval",
    )
    parser.add_argument("--steps", type=int, default=None, help="RL steps per run (overrides the budget's)")
    parser.add_argument(
        "--seeds", type=int, default=None, help="seeds per method, 0..N-1 (overrides the budget's)"
    )
    parser.add_argument(
        "--eval_every", type=int, default=None, help="held-out eval every N steps (overrides the budget's)"
    )
    parser.add_argument(
        "--eval_sampled_prompts",
        type=int,
        default=None,
        help="held-out prompts sampled G times for pass@1 / pass@G at each eval; 0 = off (overrides the "
        f"budget's: {_QUICK['eval_sampled_prompts']} quick, {_FULL['eval_sampled_prompts']} full)",
    )
    parser.add_argument(
        "--pass_curve_samples",
        type=int,
        default=None,
        help="n samples per sampled held-out prompt at step 0 and the end, for pass@k at k = 1, 2, 4, ... n; "
        f"0 = G (overrides the budget's: {_QUICK['pass_curve_samples']} quick, "
        f"{_FULL['pass_curve_samples']} full)",
    )
    parser.add_argument(
        "--entropy_coef",
        type=float,
        default=0.01,
        help="entropy regularization c of REINFORCE+EntReg; default 0.01",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="use the quick-tier model (one-digit addition): smoke tests only"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs in parallel, one torch thread each; default 2"
    )


# --- statistics over seeds -------------------------------------------------------------------------------

# Two-sided 95% Student t quantiles t_{0.975, df} for df = 1..30 (the tests check each against the integral
# of the t density).
T_975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
    2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
    2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)  # fmt: skip
Z_975 = 1.959963984540054


def t_quantile_975(df: float) -> float:
    """t_{0.975} for ``df`` degrees of freedom: the table up to 30 (a fractional Welch df rounds down, to the
    wider interval), beyond it the expansion in 1/df of Abramowitz & Stegun 26.7.5 (error < 1e-5 there).

    >>> t_quantile_975(4)
    2.776445
    """
    if not df >= 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")
    if df < len(T_975) + 1:
        return T_975[int(df) - 1]
    z = Z_975
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(term / df ** (power + 1) for power, term in enumerate(terms))


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


@dataclass(frozen=True)
class Interval:
    """A mean and its 95% interval; ``low``/``high`` are None when fewer than 2 values make it undefined.

    ``n``: the values behind it (seeds, or seed pairs for a paired difference; both sides' seeds for Welch's).
    ``paired``: for a difference, whether it is paired by seed (None for a plain mean).
    """

    mean: float
    low: float | None
    high: float | None
    n: int
    paired: bool | None = None
    se: float | None = None  # standard error of the mean (or of the difference); for p-values
    df: float | None = None  # its t degrees of freedom

    def to_json(self) -> dict:
        ci = None if self.low is None else [self.low, self.high]
        record = {"mean": self.mean if _finite(self.mean) else None, "ci95": ci, "n": self.n}
        if self.paired is not None:
            record["paired"] = self.paired
        return record


def mean_interval(values) -> Interval:
    """Mean and 95% t interval, mean ± t_{0.975, n-1}·sd/√n, of the finite ``values`` (None/NaN dropped)."""
    values = [v for v in values if _finite(v)]
    if not values:
        return Interval(math.nan, None, None, 0)
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, None, None, 1)
    se = statistics.stdev(values) / math.sqrt(len(values))
    half = t_quantile_975(len(values) - 1) * se
    return Interval(mean, mean - half, mean + half, len(values), se=se, df=len(values) - 1)


def difference_interval(a: dict[int, float], b: dict[int, float]) -> Interval:
    """95% interval of mean(a) - mean(b) from per-seed values ``{seed: value}``.

    When both ran the same seeds it is paired: the t interval of the per-seed differences a_s - b_s (over the
    seeds where both are finite), which removes what a seed's prompts and warm start share across methods.
    Otherwise it is Welch's unpaired interval.
    """
    if set(a) == set(b):
        differences = [a[s] - b[s] for s in sorted(a) if _finite(a[s]) and _finite(b[s])]
        return replace(mean_interval(differences), paired=True)
    xs, ys = [v for v in a.values() if _finite(v)], [v for v in b.values() if _finite(v)]
    if not xs or not ys:
        return Interval(math.nan, None, None, len(xs) + len(ys), paired=False)
    difference = statistics.fmean(xs) - statistics.fmean(ys)
    if len(xs) < 2 or len(ys) < 2:
        return Interval(difference, None, None, len(xs) + len(ys), paired=False)
    var_a, var_b = statistics.variance(xs) / len(xs), statistics.variance(ys) / len(ys)
    if var_a + var_b == 0:
        return Interval(difference, difference, difference, len(xs) + len(ys), paired=False)
    df = (var_a + var_b) ** 2 / (var_a**2 / (len(xs) - 1) + var_b**2 / (len(ys) - 1))  # Welch-Satterthwaite
    se = math.sqrt(var_a + var_b)
    half = t_quantile_975(df) * se
    return Interval(
        difference, difference - half, difference + half, len(xs) + len(ys), paired=False, se=se, df=df
    )


VERDICTS = ("holds", "contradicted", "undecided")
RELATIONS = (">", "<", "=")
# "a matches b" (relation "="): the difference lies within ±0.015, the resolution asked of the headline
# accuracy interval (issue 23). A claim of no difference needs a margin: an interval can never exclude "not 0".
EQUIVALENCE_MARGIN = 0.015


def verdict(difference: Interval, relation: str, margin: float = EQUIVALENCE_MARGIN) -> str:
    """ "holds" when the 95% interval of a - b excludes 0 on the claimed side (``relation`` ">" or "<"),
    "contradicted" when it excludes 0 on the other side, "undecided" otherwise (also when undefined).

    ``relation`` "=" (a matches b): "holds" when the interval lies inside (-margin, margin), "contradicted" when
    it lies wholly beyond one of them, "undecided" otherwise.
    """
    if difference.low is None:
        return "undecided"
    if relation == "=":
        if -margin < difference.low and difference.high < margin:
            return "holds"
        return "contradicted" if difference.low > margin or difference.high < -margin else "undecided"
    sign = {">": 1.0, "<": -1.0}[relation]
    low, high = sorted((sign * difference.low, sign * difference.high))
    return "holds" if low > 0 else ("contradicted" if high < 0 else "undecided")


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b) by its continued fraction (Numerical Recipes 6.4, Lentz)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1.0 - _incomplete_beta(1 - x, b, a)
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * result / a


def t_upper_tail(t: float, df: float) -> float:
    """P(T >= t) for Student's t with ``df`` degrees of freedom.

    >>> round(t_upper_tail(2.776445, 4), 6)
    0.025
    """
    tail = 0.5 * _incomplete_beta(df / (df + t * t), df / 2, 0.5)
    return tail if t >= 0 else 1.0 - tail


def claim_p_value(difference: Interval, relation: str, margin: float = EQUIVALENCE_MARGIN) -> float:
    """The p-value behind ``verdict``: its verdict is decided (holds or contradicted) exactly when p < 0.05.

    For ">" / "<" the two-sided t test of a - b = 0. For "=" the smaller of two tests, each doubled so that
    p < 0.05 matches the 95% interval: equivalence (both one-sided tests against ±margin, TOST) and
    non-equivalence (the difference beyond one margin). 1 where the interval is undefined.
    """
    if difference.se is None or difference.low is None:
        return 1.0
    if difference.se == 0:  # all seeds agree: decided exactly when the verdict is
        return 0.0 if verdict(difference, relation, margin) != "undecided" else 1.0

    def above(x):  # evidence that the true difference exceeds x
        return t_upper_tail((difference.mean - x) / difference.se, difference.df)

    def below(x):
        return t_upper_tail((x - difference.mean) / difference.se, difference.df)

    if relation == "=":
        p = min(2 * max(above(-margin), below(margin)), 2 * min(above(margin), below(-margin)))
    else:
        p = 2 * min(above(0.0), below(0.0))
    return min(1.0, p)


def holm(p_values: list[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down procedure: which of the hypotheses are rejected, the family-wise error held at
    ``alpha``. The i-th smallest p (i = 0, 1, ...) must be <= alpha / (m - i), and every smaller one too.

    >>> holm([0.01, 0.04, 0.03])  # 0.01 <= 0.05/3; then 0.03 > 0.05/2 stops
    [True, False, False]
    """
    rejected = [False] * len(p_values)
    for rank, index in enumerate(sorted(range(len(p_values)), key=p_values.__getitem__)):
        if p_values[index] > alpha / (len(p_values) - rank):
            break
        rejected[index] = True
    return rejected


def seeds_for_half_width(sd: float, target: float, max_seeds: int = 10_000) -> int | None:
    """The fewest seeds n whose 95% t interval, t(0.975, n-1)·sd/√n, is at most ``target`` wide on each side.

    >>> seeds_for_half_width(0.021, 0.015)  # t(9)·0.021/√10 = 0.01502; t(10)·0.021/√11 = 0.01411
    11
    """
    if not (_finite(sd) and target > 0):
        return None
    for n in range(2, max_seeds + 1):
        if t_quantile_975(n - 1) * sd / math.sqrt(n) <= target:
            return n
    return None


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


def _load_rows(run_dir: Path) -> list[dict]:
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
    return {int(key[len(prefix) :]): v for key, v in row.items() if key.startswith(prefix) and _finite(v)}


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


# --- the paper's claims ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """``a`` ``relation`` ``b`` on one statistic of ``STATISTICS``, judged by the interval of a - b.

    ``b`` None compares ``a`` with 0. ``many_answers``: judged only on tasks with many correct responses per
    prompt (not on ``ONE_ANSWER_TASKS``).
    """

    text: str
    a: str
    relation: str  # ">" or "<": the claimed sign of a - b; "=": |a - b| < EQUIVALENCE_MARGIN
    b: str | None
    statistic: str
    many_answers: bool = False


# Baselines: REINFORCE for the §3.1 decomposition, GRPO for the §3.2 flips. Entropy on correct rollouts is
# "kept" when its second-half level is above the baseline's: a seed's step-1 rollouts are the same for every
# method, so a higher late level is also a smaller drop from the common start.
CLAIMS = [
    # §3.1, entropy: overall, then split by the rollouts' correctness
    Claim("Pos-only keeps entropy higher than REINFORCE", "Pos-only", ">", "REINFORCE", "entropy_late"),
    Claim("Neg-only drives entropy lower than REINFORCE", "Neg-only", "<", "REINFORCE", "entropy_late"),
    Claim(
        "Pos-only keeps the entropy of correct rollouts (informative) above REINFORCE's",
        "Pos-only", ">", "REINFORCE", "entropy_pos_late",
    ),
    Claim(
        "GRPO keeps the entropy of correct rollouts above REINFORCE's",
        "GRPO", ">", "REINFORCE", "entropy_pos_late",
    ),
    Claim(
        "Neg-only prunes the entropy of wrong rollouts (spurious) below REINFORCE's",
        "Neg-only", "<", "REINFORCE", "entropy_neg_late",
    ),
    Claim(
        "GRPO prunes the entropy of wrong rollouts below REINFORCE's",
        "GRPO", "<", "REINFORCE", "entropy_neg_late",
    ),
    # §3.1, accuracy and mechanism
    Claim(
        "Pos-only (sustaining informative entropy) beats REINFORCE in accuracy",
        "Pos-only", ">", "REINFORCE", "val_acc_ema",
    ),
    Claim(
        "Neg-only (pruning spurious entropy) beats REINFORCE in accuracy",
        "Neg-only", ">", "REINFORCE", "val_acc_ema",
    ),
    Claim(
        "Pos-only lowers the none-solved fraction vs REINFORCE",
        "Pos-only", "<", "REINFORCE", "none_solved",
    ),
    Claim(
        "Neg-only raises the positive log-prob gain vs REINFORCE",
        "Neg-only", ">", "REINFORCE", "pos_logprob_gain",
    ),
    Claim(
        "Entropy regularization raises entropy vs REINFORCE",
        "REINFORCE+EntReg", ">", "REINFORCE", "entropy_late",
    ),
    Claim("...but does not reach Pos-only's accuracy", "REINFORCE+EntReg", "<", "Pos-only", "val_acc_ema"),
    # §3.2, the flips against GRPO
    Claim("EntDecrease lowers entropy vs GRPO", "EntDecrease", "<", "GRPO", "entropy_late"),
    Claim("EntIncrease raises entropy vs GRPO", "EntIncrease", ">", "GRPO", "entropy_late"),
    Claim(
        "EntDecrease lowers the entropy of correct rollouts below GRPO's",
        "EntDecrease", "<", "GRPO", "entropy_pos_late",
    ),
    Claim(
        "EntIncrease raises the entropy of wrong rollouts above GRPO's",
        "EntIncrease", ">", "GRPO", "entropy_neg_late",
    ),
    Claim(
        "EntDecrease (suppressing informative entropy) is less accurate than GRPO",
        "EntDecrease", "<", "GRPO", "val_acc_ema",
    ),
    Claim(
        "EntIncrease (amplifying spurious entropy) is less accurate than GRPO",
        "EntIncrease", "<", "GRPO", "val_acc_ema",
    ),
    Claim("AsymGRPO (0.9, 0.4) is more accurate than GRPO (Table 1)", "AsymGRPO", ">", "GRPO", "val_acc_ema"),
    # Distinct correct solutions and pass@G follow informative entropy: the same three pairs as entropy_pos.
    Claim(
        "Pos-only finds more distinct correct solutions than REINFORCE",
        "Pos-only", ">", "REINFORCE", "unique_correct_late", many_answers=True,
    ),
    Claim(
        "GRPO finds more distinct correct solutions than REINFORCE",
        "GRPO", ">", "REINFORCE", "unique_correct_late", many_answers=True,
    ),
    Claim(
        "EntDecrease finds fewer distinct correct solutions than GRPO",
        "EntDecrease", "<", "GRPO", "unique_correct_late", many_answers=True,
    ),
    Claim("Pos-only raises held-out pass@G vs REINFORCE", "Pos-only", ">", "REINFORCE", "pass_at_G_ema"),
    Claim("GRPO raises held-out pass@G vs REINFORCE", "GRPO", ">", "REINFORCE", "pass_at_G_ema"),
    Claim("EntDecrease lowers held-out pass@G vs GRPO", "EntDecrease", "<", "GRPO", "pass_at_G_ema"),
    # Fig. 1(c)
    Claim("Cov(p) rises with group accuracy p under GRPO (Fig. 1c)", "GRPO", ">", None, "cov_spearman"),
    # Exploration where it shows: pass@k at the largest k, from n samples at the start and the end.
    Claim(
        "AsymGRPO keeps more exploration than GRPO: higher pass@n at the end (k = n)",
        "AsymGRPO", ">", "GRPO", "pass_at_n_end",
    ),
    Claim("...while matching GRPO's pass@1 at the end (|a − b| < 0.015)", "AsymGRPO", "=", "GRPO", "pass_at_1_end"),
    Claim("RL lowers pass@n below the warm start: REINFORCE", "REINFORCE", "<", None, "pass_at_n_change"),
    Claim("RL lowers pass@n below the warm start: GRPO", "GRPO", "<", None, "pass_at_n_change"),
    Claim("RL lowers pass@n below the warm start: AsymGRPO", "AsymGRPO", "<", None, "pass_at_n_change"),
]  # fmt: skip


def _by_seed(values) -> dict[int, float]:
    """``{seed: value}``; a plain list is seeds 0..n-1."""
    return dict(values) if isinstance(values, dict) else dict(enumerate(values))


def check_claims(
    per_seed: dict[str, dict], task: str = "addition", target_half_width: float = EQUIVALENCE_MARGIN
) -> list[dict]:
    """Judge every claim whose methods ran (and that applies to ``task``), from per-seed values
    ``per_seed[method][statistic]`` (``{seed: value}``, or a list for seeds 0..n-1).

    Each verdict also comes after a Holm correction across the claims judged here (``verdict_holm``: the
    uncorrected verdict where its p-value survives, else "undecided"), with the sd of the paired differences
    and the seeds that sd says a 95% interval of half-width ``target_half_width`` needs."""
    verdicts = []
    for claim in CLAIMS:
        if claim.a not in per_seed or (claim.b is not None and claim.b not in per_seed):
            continue
        if claim.many_answers and task in ONE_ANSWER_TASKS:
            continue
        a = _by_seed(per_seed[claim.a][claim.statistic])
        b = {seed: 0.0 for seed in a} if claim.b is None else _by_seed(per_seed[claim.b][claim.statistic])
        difference = difference_interval(a, b)
        differences = [a[s] - b[s] for s in a if s in b and _finite(a[s]) and _finite(b[s])]
        sd = statistics.stdev(differences) if difference.paired and len(differences) > 1 else math.nan
        verdicts.append(
            dict(
                claim=claim.text,
                verdict=verdict(difference, claim.relation),
                p_value=claim_p_value(difference, claim.relation),
                sd_paired=sd,
                seeds_for_target=seeds_for_half_width(sd, target_half_width),
                a=claim.a,
                relation=claim.relation,
                b=claim.b,
                statistic=claim.statistic,
                definition=STATISTICS[claim.statistic][1],
                mean_a=mean_interval(a.values()).mean,
                mean_b=mean_interval(b.values()).mean,
                difference=difference.to_json(),
            )
        )
    survives = holm([v["p_value"] for v in verdicts])
    for v, kept in zip(verdicts, survives):
        v["verdict_holm"] = v["verdict"] if kept else "undecided"
    return verdicts


def claims_not_judged(labels, task: str) -> list[str]:
    """The claims whose methods ran but which ``task`` cannot test (one correct response per prompt)."""
    return [
        c.text
        for c in CLAIMS
        if c.many_answers and task in ONE_ANSWER_TASKS and c.a in labels and (c.b is None or c.b in labels)
    ]


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
            text = _fmt_interval(record).replace(" [", "\n[")
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


# --- the report ------------------------------------------------------------------------------------------


def _json_value(value):
    return value if _finite(value) else None


def _fmt_interval(record: dict, digits: int = 3, signed: bool = False) -> str:
    """``Interval.to_json()``'s record as "mean [low, high]", or "mean (n = 1)" without an interval."""
    if record["mean"] is None:
        return "n/a"
    number = f"{{:{'+' if signed else ''}.{digits}f}}"
    if record["ci95"] is None:
        return number.format(record["mean"]) + f" (n = {record['n']})"
    low, high = record["ci95"]
    return f"{number.format(record['mean'])} [{number.format(low)}, {number.format(high)}]"


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
                f"| {label} | " + " | ".join(_fmt_interval(by_key[k].to_json()) for k in keys) + " |"
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
        if _finite(warm[key])
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
            cells = [_fmt_interval(curve[k].to_json()) if k in curve else "" for k in ks]
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
                    else " / ".join(_fmt_interval(intervals[label][k].to_json()) for k in grid_keys)
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
            f"{v['a']} {v['mean_a']:.3f} vs {baseline}; a − b = {_fmt_interval(difference, 4, signed=True)} "
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


# --- the command -----------------------------------------------------------------------------------------


def _run_one(job: tuple[str, dict]) -> tuple[str, dict]:
    from asym_openrlhf.lite.train import default_settings, train

    label, overrides = job
    return label, train(default_settings(**overrides), progress=False)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from asym_openrlhf.lite.train import default_settings

    budget = BUDGETS[args.budget]

    def pick(value, key):
        return budget[key] if value is None else value

    steps, seeds = pick(args.steps, "steps"), pick(args.seeds, "seeds")
    eval_every, eval_sampled, curve_samples = (
        pick(args.eval_every, "eval_every"),
        pick(args.eval_sampled_prompts, "eval_sampled_prompts"),
        pick(args.pass_curve_samples, "pass_curve_samples"),
    )
    grid = parse_grid(args.grid) if args.grid else {}
    method_list = args.methods if args.methods is not None else ("" if grid else ",".join(DEFAULT_METHODS))
    methods = [m.strip() for m in method_list.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not (methods or grid):
        raise ValueError(
            f"--methods: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(METHODS)}"
        )
    method_settings = {label: dict(METHODS[label]) for label in methods}
    for label, (beta_pos, beta_neg) in grid.items():
        method_settings[label] = dict(
            advantage_estimator="asym_grpo", asym_beta_pos=beta_pos, asym_beta_neg=beta_neg
        )
    methods = list(method_settings)
    for flag, value in (
        ("--steps", steps),
        ("--seeds", seeds),
        ("--eval_every", eval_every),
        ("--jobs", args.jobs),
    ):
        if value < 1:
            raise ValueError(f"{flag}: must be >= 1")
    if eval_sampled < 0:
        raise ValueError("--eval_sampled_prompts: must be >= 0")
    if curve_samples < 0:
        raise ValueError("--pass_curve_samples: must be >= 0")
    if args.entropy_coef < 0:
        raise ValueError("--entropy_coef: must be >= 0")
    if args.tiny and args.task != "addition":
        raise ValueError(
            f"--tiny: the quick-tier model is one-digit addition only; drop --tiny for --task {args.task}"
        )
    out = check_output_dir(
        args.output_dir or ("outputs/study" if args.task == "addition" else f"outputs/study_{args.task}"),
        "--output_dir",
    )
    jobs = []
    # Seed-major: a study stopped early has every method at its first seeds, which pair.
    for seed in range(seeds):
        for label in methods:
            overrides = dict(method_settings[label])
            if "entropy_coef" in overrides:
                overrides["entropy_coef"] = args.entropy_coef
            overrides.update(
                task=args.task,
                steps=steps,
                seed=seed,
                eval_every=eval_every,
                eval_sampled_prompts=eval_sampled,
                pass_curve_samples=curve_samples,
                save_every=10,
                quick=args.tiny,
                threads=1,
                output_dir=str(out / "runs" / f"{label}_seed{seed}"),
            )
            jobs.append((label, overrides))
    probe = default_settings(**jobs[0][1])  # validates the settings and gives the batch shape for the note
    if not (Path(probe.model) / "config.json").is_file():
        raise ValueError(f"--task: no warm-start checkpoint for {args.task} at {probe.model}")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    if args.jobs == 1:
        results = map(_run_one, jobs)
    else:
        context = get_context(
            "spawn"
        )  # a clean interpreter per worker: no torch thread pools inherited by fork
        pool = ProcessPoolExecutor(max_workers=args.jobs, mp_context=context)
        results = pool.map(_run_one, jobs)
    for _ in tqdm(results, total=len(jobs), desc="study runs", unit="run"):
        pass
    if args.jobs > 1:
        pool.shutdown()
    rows_by_run = {
        label: {s: _load_rows(out / "runs" / f"{label}_seed{s}") for s in range(seeds)} for label in methods
    }
    title = task_label(args.task, args.tiny)
    sampled_prompts = min(eval_sampled, probe.heldout_size)
    sampled = (
        f"pass@1 / pass@{probe.group_size} from G samples on the first {sampled_prompts} of them"
        if eval_sampled
        else "pass@k off"
    )
    note = (
        f"Task: {title}; model: {Path(probe.model).name} ({probe.tier} tier); {steps} steps × {seeds} seeds "
        f"(0..{seeds - 1}) per method; {probe.prompts_per_step} prompts × G = {probe.group_size}, "
        f"{probe.mini_batches} mini-batches, "
        f"lr {probe.lr:g}, clip {probe.eps_low:g}/{probe.eps_high:g}, {probe.loss_agg} loss; held-out greedy "
        f"eval on {probe.heldout_size} prompts at step 0 and every {eval_every} steps, {sampled}; "
        f"REINFORCE+EntReg c = {args.entropy_coef}."
    )
    text = report(out, rows_by_run, note, group_size=probe.group_size, task=args.task, title=title, grid=grid)
    print(text)
    return 0
