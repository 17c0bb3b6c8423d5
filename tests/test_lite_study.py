"""``asym-rl study``: the statistics over seeds (t quantiles, intervals, paired differences, verdicts), the
per-run statistics and claims, and the command on a tiny budget (figures, table, verdicts; reruns skip)."""

from __future__ import annotations

import json
import math
import time

import pytest

from asym_openrlhf.cli.main import main
from asym_openrlhf.lite.claims import CLAIMS, check_claims, claims_not_judged
from asym_openrlhf.lite.run_statistics import STATISTICS, run_statistics
from asym_openrlhf.lite.stats import (
    RELATIONS,
    T_975,
    VERDICTS,
    Interval,
    claim_p_value,
    difference_interval,
    holm,
    mean_interval,
    seeds_for_half_width,
    t_quantile_975,
    t_upper_tail,
    verdict,
)
from asym_openrlhf.lite.study import METHODS, parse_grid
from asym_openrlhf.lite.study_figures import mean_band, pass_curves


def _t_cdf_above_zero(q: float, df: int, intervals: int = 4000) -> float:
    """P(0 < T < q) for Student's t with ``df`` degrees of freedom, by Simpson's rule on the density."""
    norm = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def density(x):
        return norm * (1 + x * x / df) ** (-(df + 1) / 2)

    h = q / intervals
    inner = sum((4 if i % 2 else 2) * density(i * h) for i in range(1, intervals))
    return (density(0) + inner + density(q)) * h / 3


@pytest.mark.parametrize("df", range(1, len(T_975) + 1))
def test_t_table_is_the_975_quantile(df):
    # Each tabled quantile leaves 2.5% in the upper tail: P(0 < T < q) = 0.475, to the table's 6 decimals.
    assert abs(_t_cdf_above_zero(t_quantile_975(df), df) - 0.475) < 2e-7


@pytest.mark.parametrize(
    "df, expected",
    [
        (1, 12.706),  # textbook values, 3 decimals
        (4, 2.776),
        (10, 2.228),
        (30, 2.042),
        (40, 2.021),  # beyond the table: the expansion in 1/df
        (60, 2.000),
        (120, 1.980),
        (1e9, 1.960),
        (4.9, 2.776),  # a fractional (Welch) df rounds down, to the wider interval
    ],
)
def test_t_quantiles_match_known_values(df, expected):
    assert round(t_quantile_975(df), 3) == expected


def test_t_expansion_continues_the_table_and_df_below_1_is_refused():
    assert abs(t_quantile_975(31) - 2.039513) < 1e-5  # t_{0.975, 31}
    assert t_quantile_975(30) > t_quantile_975(31) > t_quantile_975(32)
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile_975(0.5)


def test_mean_interval_closed_form():
    # [1, 2, 3, 4]: mean 2.5, sd = sqrt(5/3) = 1.290994, half-width = t(0.975, 3) * sd / 2 = 2.054260
    interval = mean_interval([1.0, 2.0, 3.0, None, 4.0, math.nan])  # None / NaN dropped
    assert (interval.mean, interval.n) == (2.5, 4)
    assert interval.low == pytest.approx(2.5 - 2.054260, abs=1e-6)
    assert interval.high == pytest.approx(2.5 + 2.054260, abs=1e-6)
    assert mean_interval([0.3]) == Interval(0.3, None, None, 1)  # one seed: no interval
    assert mean_interval([]).n == 0


def test_welch_interval_closed_form():
    # xs = 1, 2, 3: mean 2, var/n = 1/3. ys = 3, 5, 7, 9: mean 6, var/n = (20/3)/4 = 5/3. se = sqrt(2).
    # Welch df = 2^2 / ((1/3)^2/2 + (5/3)^2/3) = 216/53 = 4.08 -> 4, t = 2.776445; half = 3.926486.
    interval = difference_interval({0: 1.0, 1: 2.0, 2: 3.0}, {3: 3.0, 4: 5.0, 5: 7.0, 6: 9.0})
    assert interval.paired is False and interval.n == 7
    assert interval.mean == -4.0
    assert interval.low == pytest.approx(-4 - 3.926486, abs=1e-6)
    assert interval.high == pytest.approx(-4 + 3.926486, abs=1e-6)


# Per-seed values: seeds differ a lot (0.1 .. 0.4), methods differ a little within each seed.
BASE = {0: 0.1, 1: 0.2, 2: 0.3, 3: 0.4}


def _shifted(shifts: list[float]) -> dict[int, float]:
    return {seed: BASE[seed] + shift for seed, shift in zip(BASE, shifts)}


@pytest.mark.parametrize(
    "a, b, relation, expected, paired",
    [
        # a is above b by 0.010-0.012 in every seed: the paired interval excludes 0 -> holds
        (_shifted([0.010, 0.012, 0.011, 0.010]), BASE, ">", "holds", True),
        # ... and a "<" claim on the same numbers is contradicted
        (_shifted([0.010, 0.012, 0.011, 0.010]), BASE, "<", "contradicted", True),
        # below in every seed: "<" holds, ">" is contradicted
        (_shifted([-0.02, -0.03, -0.02, -0.025]), BASE, "<", "holds", True),
        (_shifted([-0.02, -0.03, -0.02, -0.025]), BASE, ">", "contradicted", True),
        # differences of both signs: undecided either way
        (_shifted([0.01, -0.01, 0.02, -0.015]), BASE, ">", "undecided", True),
        (_shifted([0.01, -0.01, 0.02, -0.015]), BASE, "<", "undecided", True),
        # identical: the interval is [0, 0], which does not exclude 0
        (dict(BASE), BASE, ">", "undecided", True),
        # one seed: no interval, so no verdict but undecided
        ({0: 0.5}, {0: 0.1}, ">", "undecided", True),
        # the same +0.011 shift on other seeds' numbers: unpaired (Welch), the seed spread swamps it
        ({seed + 10: value + 0.011 for seed, value in BASE.items()}, BASE, ">", "undecided", False),
        # unpaired but far apart: holds
        ({10: 0.9, 11: 0.95, 12: 0.92}, BASE, ">", "holds", False),
    ],
)
def test_verdicts_on_synthetic_seeds(a, b, relation, expected, paired):
    difference = difference_interval(a, b)
    assert difference.paired is paired
    assert verdict(difference, relation) == expected


def test_pairing_drops_seeds_missing_on_either_side():
    a = {0: 0.2, 1: math.nan, 2: 0.4, 3: 0.5}
    b = {0: 0.1, 1: 0.2, 2: None, 3: 0.3}
    difference = difference_interval(a, b)  # pairs: seeds 0 and 3 -> differences 0.1, 0.2
    assert difference.paired and difference.n == 2
    assert difference.mean == pytest.approx(0.15)


def test_claims_name_known_methods_statistics_and_relations():
    for claim in CLAIMS:
        assert claim.a in METHODS and (claim.b is None or claim.b in METHODS)
        assert claim.statistic in STATISTICS and claim.relation in RELATIONS
    assert len({claim.text for claim in CLAIMS}) == len(CLAIMS)


def _per_seed(**overrides) -> dict:
    same = {key: dict(BASE) for key in STATISTICS}  # every other statistic equal across methods
    return {**same, **overrides}


def test_check_claims_judges_what_ran_and_what_the_task_can_test():
    per_seed = {
        "Pos-only": _per_seed(
            entropy_pos_late=_shifted([0.01, 0.012, 0.011, 0.01]),
            unique_correct_late=_shifted([0.05, 0.04, 0.06, 0.05]),
        ),
        "REINFORCE": _per_seed(),
    }
    on_addition = {(v["a"], v["statistic"]): v for v in check_claims(per_seed, "addition")}
    on_countdown = {(v["a"], v["statistic"]): v for v in check_claims(per_seed, "countdown")}
    # Only claims between the two methods that ran (Pos-only vs REINFORCE), or of one of them against 0.
    assert {(v["a"], v["b"]) for v in on_countdown.values()} == {
        ("Pos-only", "REINFORCE"),
        ("REINFORCE", None),
    }
    assert on_addition[("Pos-only", "entropy_pos_late")]["verdict"] == "holds"
    assert on_addition[("Pos-only", "val_acc_ema")]["verdict"] == "undecided"  # equal accuracies
    # Distinct correct responses are judged only where a prompt has many correct responses.
    assert ("Pos-only", "unique_correct_late") not in on_addition
    assert on_countdown[("Pos-only", "unique_correct_late")]["verdict"] == "holds"
    assert claims_not_judged(per_seed, "addition") == [
        "Pos-only finds more distinct correct solutions than REINFORCE"
    ]
    assert claims_not_judged(per_seed, "countdown") == []
    record = on_addition[("Pos-only", "entropy_pos_late")]
    assert record["difference"]["paired"] and record["difference"]["n"] == 4
    assert record["difference"]["mean"] == pytest.approx(0.01075)
    assert record["definition"] == STATISTICS["entropy_pos_late"][1]


def test_claim_against_zero_and_lists_as_seeds():
    # The Fig. 1(c) claim compares GRPO's per-seed rho with 0; plain lists are seeds 0..n-1.
    verdicts = check_claims({"GRPO": _per_seed(cov_spearman=[0.6, 0.8, 0.7])})
    (cov,) = [v for v in verdicts if v["statistic"] == "cov_spearman"]
    assert cov["b"] is None and cov["verdict"] == "holds" and cov["difference"]["n"] == 3


def test_run_statistics_closed_form():
    rows = [
        {"step": 0, "eval/accuracy": 0.5, "eval/pass_at_1": 0.4, "eval/pass_at_8": 0.9},
        {"step": 1, "actor/entropy": 0.4, "actor/entropy_pos": 0.5, "rollout/accuracy": 0.1},
        {
            "step": 2,
            "actor/entropy": 0.3,
            "actor/entropy_pos": 0.4,
            "rollout/accuracy": 0.2,
            "eval/accuracy": 0.6,
        },
        {"step": 3, "actor/entropy": 0.2, "actor/entropy_pos": 0.3, "rollout/accuracy": 0.3},
        {
            "step": 4,
            "actor/entropy": 0.1,
            "actor/entropy_pos": None,
            "rollout/accuracy": 0.4,
            "eval/accuracy": 1.0,
        },
    ]
    stats = run_statistics(rows, group_size=8)
    assert stats["entropy_late"] == pytest.approx(0.15)  # steps 3, 4
    assert stats["entropy_pos_late"] == pytest.approx(0.3)  # step 4 has no correct rollout
    assert stats["train_acc_late"] == pytest.approx(0.35)
    assert stats["val_acc_ema"] == pytest.approx(
        0.671
    )  # 0.5 -> 0.7*0.5+0.3*0.6 = 0.53 -> 0.7*0.53+0.3 = 0.671
    assert stats["pass_at_G_ema"] == 0.9 and stats["pass_at_G_start"] == 0.9
    assert stats["val_acc_start"] == 0.5
    assert math.isnan(stats["entropy_neg_late"]) and math.isnan(stats["cov_spearman"])  # never logged


def test_study_refuses_tiny_off_addition(tmp_path, capsys):
    assert main(["study", "--task", "countdown", "--tiny", "--output_dir", str(tmp_path)]) == 2
    assert "error: --tiny:" in capsys.readouterr().err


@pytest.mark.slow  # a study of 8 methods x 2 seeds
def test_study_tiny_budget_writes_figures_and_verdicts(tmp_path, capsys):
    argv = ["study", "--tiny", "--steps", "2", "--seeds", "2", "--eval_every", "2", "--jobs", "1"]
    argv += ["--methods", "REINFORCE,Pos-only,Neg-only", "--output_dir", str(tmp_path)]
    assert main(argv) == 0
    for name in ("fig2_dynamics.png", "fig1c_covariance.png", "summary.md", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["task"] == "addition"
    assert set(summary["stats"]) == {"REINFORCE", "Pos-only", "Neg-only"}
    assert set(summary["per_seed"]["Pos-only"]["val_acc_ema"]) == {"0", "1"}  # one value per seed
    accuracy = summary["stats"]["Pos-only"]["val_acc_ema"]
    assert accuracy["n"] == 2 and accuracy["ci95"][0] <= accuracy["mean"] <= accuracy["ci95"][1]
    # pass@k is on: the held-out sampled metrics are finite for every run.
    assert all(v is not None for v in summary["per_seed"]["REINFORCE"]["pass_at_G_ema"].values())
    # Only the claims whose methods ran are judged (those on distinct correct responses not on addition).
    claims = summary["claims"]
    assert {c["a"] for c in claims} | {c["b"] for c in claims} <= set(summary["stats"]) | {None}
    ran = {"REINFORCE", "Pos-only", "Neg-only"}
    expected = [c for c in CLAIMS if c.a in ran and c.b in ran | {None} and not c.many_answers]
    assert [c["claim"] for c in claims] == [c.text for c in expected]
    assert summary["claims_not_judged"] == [
        c.text for c in CLAIMS if c.a in ran and c.b in ran and c.many_answers
    ]
    assert {c["verdict"] for c in claims} <= set(VERDICTS)
    assert all(c["difference"]["paired"] and c["difference"]["n"] == 2 for c in claims)
    captured = capsys.readouterr()
    out = captured.out
    assert "## The paper's claims" in out and "one-digit addition" in out
    # A 2-step study says what it averaged (not "steps 1..40"), and keeps one progress display.
    assert "steps 1..min(40, N)" in summary["statistics"]["cov_spearman"]
    assert "first 40 steps" not in (tmp_path / "summary.md").read_text()
    for noise in ("Loading weights", "Writing model shards", "Setting accelerator to CPU"):
        assert noise not in captured.err + out

    # Finished runs are skipped: a rerun only redraws.
    stamp = (tmp_path / "runs" / "Pos-only_seed0" / "metrics.jsonl").stat().st_mtime
    time.sleep(0.01)
    assert main(argv) == 0
    assert (tmp_path / "runs" / "Pos-only_seed0" / "metrics.jsonl").stat().st_mtime == stamp


@pytest.mark.slow  # a Countdown study
def test_study_countdown_tiny_budget(tmp_path):
    argv = [
        "study",
        "--task",
        "countdown",
        "--steps",
        "2",
        "--seeds",
        "2",
        "--eval_every",
        "2",
        "--jobs",
        "1",
    ]
    argv += ["--eval_sampled_prompts", "8", "--methods", "REINFORCE,Pos-only", "--output_dir", str(tmp_path)]
    argv += ["--pass_curve_samples", "16", "--grid", "beta_pos=0.3,0.9", "beta_neg=0.4"]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["task"] == "countdown" and summary["claims_not_judged"] == []
    assert "Pos-only finds more distinct correct solutions than REINFORCE" in {
        c["claim"] for c in summary["claims"]
    }
    text = (tmp_path / "summary.md").read_text()
    assert "Countdown" in text and "(Holm: " in text and "after Holm's correction" in text
    # The grid's cells ran beside --methods, and the pass@k curve goes to k = 16 at the start and the end.
    assert set(summary["stats"]) == {"REINFORCE", "Pos-only", "asym(0.3,0.4)", "asym(0.9,0.4)"}
    assert summary["grid"] == {"asym(0.3,0.4)": [0.3, 0.4], "asym(0.9,0.4)": [0.9, 0.4]}
    assert list(summary["pass_curves"]["warm start"]) == ["1", "2", "4", "8", "16"]
    assert summary["pass_curves"]["asym(0.3,0.4)"]["16"]["n"] == 2
    grid_csv = (tmp_path / "grid.csv").read_text().splitlines()
    assert grid_csv[0] == "beta_pos,beta_neg,statistic,mean,low,high,seeds" and len(grid_csv) == 1 + 2 * 2
    mean = summary["stats"]["asym(0.3,0.4)"]["val_acc_ema"]["mean"]
    assert grid_csv[1].startswith(f"0.3,0.4,val_acc_ema,{mean},")
    for name in ("beta_grid.png", "pass_at_k.png", "pass_at_k.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert main(["study", "--grid", "beta_neg=9", "--output_dir", str(tmp_path)]) == 2


@pytest.mark.parametrize("df", [1, 2, 4, 5, 10, 30])
def test_t_upper_tail_inverts_the_quantile_table(df):
    assert t_upper_tail(t_quantile_975(df), df) == pytest.approx(0.025, abs=1e-6)
    assert t_upper_tail(-t_quantile_975(df), df) == pytest.approx(0.975, abs=1e-6)
    assert t_upper_tail(0.0, df) == pytest.approx(0.5)
    # df = 1 is the Cauchy distribution: P(T >= 1) = 1/2 - arctan(1)/pi = 1/4
    assert t_upper_tail(1.0, 1) == pytest.approx(0.25)


@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize("seed", range(40))
def test_p_value_decides_exactly_when_the_interval_does(relation, seed):
    """p < 0.05 if and only if the interval rule gives holds or contradicted, for random paired data."""
    import random

    rng = random.Random(seed)
    shift, spread = rng.uniform(-0.04, 0.04), rng.uniform(0.001, 0.03)
    a = {s: BASE[s] + shift + rng.gauss(0, spread) for s in BASE}
    difference = difference_interval(a, BASE)
    decided = verdict(difference, relation) != "undecided"
    assert (claim_p_value(difference, relation) < 0.05) == decided


def test_equivalence_verdict_closed_form():
    # a - b = +0.001..+0.003 every seed: a tight interval well inside +-0.015 -> "matches" holds
    assert verdict(difference_interval(_shifted([0.001, 0.002, 0.003, 0.002]), BASE), "=") == "holds"
    # +0.05 everywhere: beyond the margin -> contradicted
    assert verdict(difference_interval(_shifted([0.05, 0.052, 0.049, 0.05]), BASE), "=") == "contradicted"
    # wide: straddles the margin -> undecided
    assert verdict(difference_interval(_shifted([0.03, -0.02, 0.01, -0.01]), BASE), "=") == "undecided"


def test_holm_closed_form():
    assert holm([0.01, 0.04, 0.03]) == [True, False, False]  # 0.01 <= 0.05/3; 0.03 > 0.05/2 stops
    assert holm([0.01, 0.02, 0.03]) == [True, True, True]  # 0.0167, 0.025, 0.05
    assert holm([0.04]) == [True] and holm([]) == []
    assert holm([0.2, 0.001]) == [False, True]


def test_seeds_for_half_width_closed_form():
    # t(9)·0.021/√10 = 2.262157·0.006641 = 0.01502 > 0.015; t(10)·0.021/√11 = 2.228139·0.006332 = 0.01411
    assert seeds_for_half_width(0.021, 0.015) == 11
    assert seeds_for_half_width(0.0, 0.015) == 2
    assert seeds_for_half_width(math.nan, 0.015) is None


def test_holm_verdicts_beside_the_uncorrected_ones():
    # Two claims hold uncorrected: a strong one (Pos-only entropy) and a marginal one (Pos-only accuracy,
    # p between 0.025 and 0.05), which does not survive Holm's 0.05/2 for the second smallest p.
    per_seed = {
        "Pos-only": _per_seed(
            entropy_late=_shifted([0.010, 0.012, 0.011, 0.010]),
            val_acc_ema=_shifted([0.010, 0.005, 0.012, 0.004]),  # mean 0.00775, t(3) = 4.01, p = 0.028
        ),
        "REINFORCE": _per_seed(),
    }
    verdicts = {v["statistic"]: v for v in check_claims(per_seed, "addition")}
    strong, marginal = verdicts["entropy_late"], verdicts["val_acc_ema"]
    assert strong["verdict"] == strong["verdict_holm"] == "holds"
    assert marginal["verdict"] == "holds" and 0.025 < marginal["p_value"] < 0.05
    assert marginal["verdict_holm"] == "undecided"
    assert all(v["verdict_holm"] == "undecided" for v in verdicts.values() if v["verdict"] == "undecided")


def test_pass_curve_statistics_and_curves_closed_form():
    start = {
        "step": 0,
        "eval/accuracy": 0.5,
        "eval/pass_at_1": 0.2,
        "eval/pass_at_2": 0.35,
        "eval/pass_at_4": 0.6,
    }
    end = {
        "step": 2,
        "eval/accuracy": 0.7,
        "eval/pass_at_1": 0.3,
        "eval/pass_at_2": 0.4,
        "eval/pass_at_4": 0.5,
    }
    rows = [start, {"step": 1, "eval/pass_at_1": 0.25, "eval/pass_at_2": 0.38}, end]
    stats = run_statistics(rows, group_size=2)
    assert stats["pass_at_1_end"] == 0.3 and stats["pass_at_n_end"] == 0.5  # n = 4, the largest k at the end
    assert stats["pass_at_n_change"] == pytest.approx(0.5 - 0.6)
    shifted = [start, {**end, "eval/pass_at_4": 0.7}]
    curves, per_seed = pass_curves({"A": {0: rows, 1: shifted}, "B": {0: rows}})
    assert list(curves) == ["warm start", "A", "B"]
    assert curves["warm start"][4].mean == 0.6 and curves["warm start"][4].n == 2  # one per seed, not per run
    assert curves["A"][4].mean == pytest.approx(0.6) and curves["A"][4].n == 2  # (0.5 + 0.7) / 2
    assert per_seed["B"] == {0: {1: 0.3, 2: 0.4, 4: 0.5}}


def test_parse_grid_and_its_errors():
    assert parse_grid(["beta_pos=0.3,1.2", "beta_neg=0.2,0.8"]) == {
        "asym(0.3,0.2)": (0.3, 0.2), "asym(0.3,0.8)": (0.3, 0.8),
        "asym(1.2,0.2)": (1.2, 0.2), "asym(1.2,0.8)": (1.2, 0.8),
    }  # fmt: skip
    assert parse_grid(["beta_neg=0.2"]) == {"asym(0.9,0.2)": (0.9, 0.2)}  # beta+ stays at the paper's
    for bad, message in [
        (["gamma=1"], "expected beta_pos="),
        (["beta_pos=1", "beta_pos=2"], "given twice"),
        (["beta_pos=a"], "not a list of numbers"),
        (["beta_neg=5"], r"in \[0, 4\]"),
    ]:
        with pytest.raises(ValueError, match="^--grid: .*" + message):
            parse_grid(bad)


def test_bands_of_bounded_metrics_stay_in_their_range():
    """Two seeds at 0 and 1: the 95% t band is 0.5 +- 12.706 * 0.7071 / 1.4142 = 0.5 +- 6.35; a fraction's band
    is clipped to [0, 1], an entropy's only below at 0, an unbounded metric's not at all."""
    curves = [{1: 0.0}, {1: 1.0}]
    assert mean_band(curves, (0.0, 1.0)) == ([1], [0.5], [0.0], [1.0])
    _, _, low, high = mean_band(curves, (0.0, None))
    assert low == [0.0] and high[0] == pytest.approx(0.5 + 6.353, abs=1e-3)
    _, _, low, _ = mean_band(curves)
    assert low[0] == pytest.approx(0.5 - 6.353, abs=1e-3)


def test_study_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["study", "--tiny", "--output_dir", str(tmp_path / "file")]) == 2
    assert "error: --output_dir: " in capsys.readouterr().err
