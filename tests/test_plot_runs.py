"""``asym-rl plot`` on real logs: two short ``asym-rl lite`` runs (two seeds of one NAME) and an OpenRLHF run
written by upstream's own ``TensorboardLogger`` under the tags it really uses. The CSV beside each figure must
hold exactly the logged values, their EMA, and the seeds' mean and band."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from shared import read_rows  # noqa: E402  (tests/ is on sys.path: conftest.py)

sys.path.insert(0, str(Path(__file__).parent))
import upstream_support  # noqa: E402

upstream_support.install()

from asym_openrlhf.algorithms.metrics import METRICS, ema, ema_over_steps  # noqa: E402
from asym_openrlhf.cli.main import main  # noqa: E402
from asym_openrlhf.lite.train import default_settings, train  # noqa: E402

# step -> what the OpenRLHF run logs (train/<key> via log_train, eval/<key> via log_eval). No
# actor/pos_logprob_gain: the launch scripts log it only with --asym.log_pos_logprob_gain.
ENTROPY = {1: 0.50, 2: 0.40, 3: 0.30, 4: 0.45}
REWARD = {1: 0.20, 2: 0.25, 3: 0.35, 4: 0.30}
MATH500 = {0: 0.60, 2: 0.64, 4: 0.70}
RESUMED_STEP3_ENTROPY = 0.33  # a second launch (resumed from a checkpoint) logs step 3 again


def upstream_logger(tensorboard_dir: Path, run_name: str):
    from openrlhf.utils.logging_utils import TensorboardLogger

    args = SimpleNamespace(
        logger=SimpleNamespace(tensorboard_dir=str(tensorboard_dir), wandb=SimpleNamespace(run_name=run_name))
    )
    return TensorboardLogger(args)


@pytest.fixture(scope="module")
def openrlhf_run(tmp_path_factory) -> Path:
    """runs/<model>/<row>/ as the launch scripts lay it out: tensorboard/<run_name>/events..., ckpt/."""
    row = tmp_path_factory.mktemp("openrlhf") / "asymgrpo"
    (row / "ckpt").mkdir(parents=True)
    logger = upstream_logger(row / "tensorboard", "ppo_1201T10:00")
    assert set(ENTROPY) >= {1, 2, 3} and "actor/entropy" in METRICS and "rollout/all_solved_frac" in METRICS
    for step in (1, 2, 3):
        logs = {
            "actor/entropy": ENTROPY[step],
            "rollout/all_solved_frac": 0.1 * step,
            "rollout/reward_mean": REWARD[step],
            "policy_loss": 0.01,
            "generated_samples": ("Q: 1+1 A: \\boxed{2}", 1.0),
        }
        logger.log_train(step, logs)
        if step in MATH500:
            logger.log_eval(step, {"eval_math500_pass1": MATH500[step], "eval_aime24_pass1": 0.1})
    logger.log_eval(0, {"eval_math500_pass1": MATH500[0], "eval_aime24_pass1": 0.05})
    logger.close()
    # The run resumed from its step-2 checkpoint: a new launch, a new run_name folder beside the first.
    logger = upstream_logger(row / "tensorboard", "ppo_1201T12:00")
    for step, entropy in ((3, RESUMED_STEP3_ENTROPY), (4, ENTROPY[4])):
        logs = {
            "actor/entropy": entropy,
            "rollout/all_solved_frac": 0.1 * step,
            "rollout/reward_mean": REWARD[step],
        }
        logger.log_train(step, logs)
    logger.log_eval(4, {"eval_math500_pass1": MATH500[4], "eval_aime24_pass1": 0.2})
    logger.close()
    return row


@pytest.fixture(scope="module")
def lite_runs(tmp_path_factory) -> list[Path]:
    folders = []
    for seed in (0, 1):
        out = tmp_path_factory.mktemp(f"lite{seed}")
        train(
            default_settings(
                quick=True,
                threads=1,
                steps=3,
                eval_every=2,
                seed=seed,
                output_dir=str(out),
                pass_curve_samples=16,
            ),
            progress=False,
        )
        folders.append(out)
    return folders


def lite_series(folder: Path, key: str) -> dict[int, float]:
    rows = read_rows(folder / "metrics.jsonl")
    return {row["step"]: row[key] for row in rows if row.get(key) is not None}


def read_csv(path: Path) -> dict[tuple[str, str, str], list[tuple[int, float, float]]]:
    """(panel, run, source) -> [(step, raw, smoothed)]."""
    series: dict = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            key = (row["panel"], row["run"], row["source"])
            series.setdefault(key, []).append((int(row["step"]), float(row["raw"]), float(row["smoothed"])))
    return series


def raw_by_step(rows) -> dict[int, float]:
    steps = [step for step, _, _ in rows]
    assert steps == sorted(set(steps))  # one row per step, in step order
    return {step: raw for step, raw, _ in rows}


@pytest.fixture(scope="module")
def plotted(lite_runs, openrlhf_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    argv = [
        "plot",
        "--runs",
        f"lite={lite_runs[0]}",
        f"lite={lite_runs[1]}",
        f"upstream={openrlhf_run.parent}",
    ]
    # A folder above the run's tensorboard/ is enough (here: runs/<model>, holding one row).
    assert main(argv + ["--output", str(out), "--figures", "fig2,fig5,extra"]) == 0
    return out


def test_pass_curve_figure_from_lite_runs(lite_runs, openrlhf_run, tmp_path, capsys):
    """--figures passk: pass@k against k at the first and last eval; the CSV is the seeds' mean, k to 16."""
    argv = [
        "plot",
        "--runs",
        f"lite={lite_runs[0]}",
        f"lite={lite_runs[1]}",
        f"upstream={openrlhf_run.parent}",
    ]
    assert main(argv + ["--output", str(tmp_path), "--figures", "passk"]) == 0
    assert (tmp_path / "passk.png").stat().st_size > 1000
    with open(tmp_path / "passk.csv", newline="") as handle:
        rows = {(r["curve"], int(r["k"])): r for r in csv.DictReader(handle)}
    assert sorted(k for curve, k in rows if curve == "lite, step 0") == [1, 2, 4, 8, 16]
    for step in (0, 3):  # the start and the end of the 3-step runs
        expected = sum(lite_series(f, "eval/pass_at_16")[step] for f in lite_runs) / 2
        assert float(rows[(f"lite, step {step}", 16)]["mean"]) == pytest.approx(expected)
        assert rows[(f"lite, step {step}", 16)]["low"] != ""  # two seeds: a band
    assert "no pass@k curve logged by upstream" in capsys.readouterr().out


def test_openrlhf_series_are_the_logged_values_with_their_ema(plotted, openrlhf_run):
    series = read_csv(plotted / "fig2.csv")
    entropy = series[("policy entropy", "upstream", str(openrlhf_run.parent))]
    logged = {**ENTROPY, 3: RESUMED_STEP3_ENTROPY}  # the resumed launch's step 3 wins
    assert raw_by_step(entropy) == pytest.approx(logged)
    raw = [logged[s] for s in sorted(logged)]
    # EMA 0.7: 0.5; 0.7*0.5 + 0.3*0.4 = 0.47; 0.7*0.47 + 0.3*0.33 = 0.428; 0.7*0.428 + 0.3*0.45 = 0.4346
    assert [s for _, _, s in entropy] == pytest.approx([0.5, 0.47, 0.428, 0.4346])
    assert [s for _, _, s in entropy] == pytest.approx(ema(raw, 0.7))
    accuracy = series[("validation accuracy", "upstream", "mean")]
    assert raw_by_step(accuracy) == pytest.approx(MATH500)
    fig5 = read_csv(plotted / "fig5.csv")
    assert [r for _, r, _ in fig5[("training reward", "upstream", "mean")]] == pytest.approx(
        list(REWARD.values())
    )
    assert raw_by_step(fig5[("AIME24 accuracy", "upstream", "mean")]) == pytest.approx(
        {0: 0.05, 2: 0.1, 4: 0.2}
    )


def test_lite_seeds_are_drawn_as_mean_and_band(plotted, lite_runs):
    series = read_csv(plotted / "fig2.csv")
    for panel, key in (("policy entropy", "actor/entropy"), ("validation accuracy", "eval/accuracy")):
        per_seed = [lite_series(folder, key) for folder in lite_runs]
        for folder, logged in zip(lite_runs, per_seed):
            rows = series[(panel, "lite", str(folder))]
            assert raw_by_step(rows) == pytest.approx(logged)
            steps = sorted(logged)
            assert [s for _, _, s in rows] == pytest.approx(ema_over_steps(steps, [logged[s] for s in steps]))
        smoothed = [dict((s, v) for s, _, v in series[(panel, "lite", str(f))]) for f in lite_runs]
        steps = sorted(smoothed[0])
        assert [s for s, _, _ in series[(panel, "lite", "mean")]] == steps == sorted(smoothed[1])
        mean = [(smoothed[0][s] + smoothed[1][s]) / 2 for s in steps]
        assert [v for _, _, v in series[(panel, "lite", "mean")]] == pytest.approx(mean)
        assert [v for _, _, v in series[(panel, "lite", "min")]] == pytest.approx(
            [min(a[s] for a in smoothed) for s in steps]
        )
        assert [v for _, _, v in series[(panel, "lite", "max")]] == pytest.approx(
            [max(a[s] for a in smoothed) for s in steps]
        )
    assert [s for s, _, _ in series[("validation accuracy", "lite", "mean")]] == [
        0,
        2,
        3,
    ]  # eval at 0, 2, end


def test_a_missing_metric_leaves_that_run_out_and_says_so(plotted, openrlhf_run, lite_runs, capsys):
    series = read_csv(plotted / "fig2.csv")
    gain = {key[1] for key in series if key[0] == "positive-rollout log-prob gain"}
    assert gain == {"lite"}  # the OpenRLHF run did not log train/actor/pos_logprob_gain
    svg = (plotted / "fig2.svg").read_text()
    assert "not logged by: upstream" in svg
    # Lite validates on its own held-out set only: Fig. 5's benchmark panels say so, the other panels draw it.
    fig5 = read_csv(plotted / "fig5.csv")
    assert {key[1] for key in fig5 if key[0] == "MATH-500 accuracy"} == {"upstream"}
    assert {key[1] for key in fig5 if key[0] == "perfect rate (all-solved)"} == {"lite", "upstream"}
    assert "not logged by: lite" in (plotted / "fig5.svg").read_text()
    # Beyond the paper: lite logs the entropy split and the beta it used (fixed 0.9 for its default preset);
    # the upstream log here has none of it.
    extra = read_csv(plotted / "extra.csv")
    assert {key[1] for key in extra if key[0] == "entropy of correct rollouts"} == {"lite"}
    for folder in lite_runs:  # each seed's series is what its metrics.jsonl logged
        rows = extra[("entropy of correct rollouts", "lite", str(folder))]
        assert raw_by_step(rows) == pytest.approx(lite_series(folder, "actor/entropy_pos"))
    assert {key[1] for key in extra if key[0] == "beta+"} == {"lite"}
    assert {raw for key, rows in extra.items() if key[0] == "beta+" for _, raw, _ in rows} == {0.9}
    assert "not logged by: upstream" in (plotted / "extra.svg").read_text()
    for figure in ("fig2", "fig5"):
        assert (plotted / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seeds_with_different_steps_and_a_seed_lacking_a_metric(lite_runs, openrlhf_run, tmp_path, capsys):
    """One NAME over a lite run (steps 1-3) and the OpenRLHF run (steps 1-4, no none-solved), raw (--ema 0)."""
    argv = [
        "plot",
        "--runs",
        f"mixed={lite_runs[0]}",
        f"mixed={openrlhf_run}",
        "--figures",
        "fig2",
        "--ema",
        "0",
    ]
    assert main(argv + ["--output", str(tmp_path)]) == 0
    series = read_csv(tmp_path / "fig2.csv")
    lite = lite_series(lite_runs[0], "actor/entropy")
    upstream = {**ENTROPY, 3: RESUMED_STEP3_ENTROPY}
    mean = series[("policy entropy", "mixed", "mean")]
    # Steps 1-3: the mean of both; step 4: the OpenRLHF run alone. With --ema 0, smoothed is raw.
    expected = {step: (lite[step] + upstream[step]) / 2 for step in (1, 2, 3)} | {4: upstream[4]}
    assert raw_by_step(mean) == pytest.approx(expected)
    assert [smoothed for _, _, smoothed in mean] == pytest.approx([raw for _, raw, _ in mean])
    assert {key[2] for key in series if key[0] == "none-solved fraction"} == {str(lite_runs[0]), "mean"}
    assert f"'none-solved fraction': not logged by: mixed ({openrlhf_run})" in capsys.readouterr().out
    assert "no smoothing" in (tmp_path / "fig2.svg").read_text()


def test_bad_runs_give_one_line_errors(tmp_path, openrlhf_run, capsys):
    (tmp_path / "empty").mkdir()
    cases = [
        ([f"a={tmp_path / 'empty'}"], "no metrics.jsonl (asym-rl lite) and no TensorBoard event files"),
        ([f"a={tmp_path / 'nowhere'}"], "is not a folder"),
        ([str(openrlhf_run)], "expected NAME=DIR"),
    ]
    # Two rows' logs under one folder are two runs, not one.
    model = tmp_path / "qwen3-4b"
    shutil.copytree(openrlhf_run, model / "asymgrpo")
    upstream_logger(model / "grpo" / "tensorboard", "ppo_x").close()
    cases.append(([f"a={model}"], "holds the logs of several runs"))
    for runs, message in cases:
        assert main(["plot", "--runs", *runs, "--output", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("asym-rl plot: error: --runs: ") and message in err and "\n" not in err, err
    assert main(["plot", "--runs", f"a={openrlhf_run}", "--output", str(tmp_path), "--ema", "1"]) == 2
    assert "--ema: must be in [0, 1)" in capsys.readouterr().err


def write_lite_metrics(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_sparse_validation_is_smoothed_over_steps_and_lite_figures_leave_out_empty_panels(tmp_path, capsys):
    """Validation every 10 steps: 0.4, 0.6, 0.82. The EMA per point ends at 0.568 (0.7*0.46 + 0.3*0.82),
    per step at 0.814 (0.7^10 decay between points); Fig. 5 for a lite run has no benchmark panel left empty;
    at most 3 panels in a row; Fig. 3 and Fig. 4 say which runs they are for."""
    solved = {"rollout/all_solved_frac": 0.2, "rollout/none_solved_frac": 0.3}
    rows = [{"step": step, "actor/entropy": 1.0, "rollout/accuracy": 0.5, **solved} for step in range(21)]
    for row, value in zip(rows[::10], (0.4, 0.6, 0.82)):
        row["eval/accuracy"] = value
    run = write_lite_metrics(tmp_path / "run", rows)
    for over, last in (("steps", 0.814), ("points", 0.568)):
        out = tmp_path / over
        assert main(["plot", "--runs", f"lite={run}", "--output", str(out), "--ema_over", over]) == 0
        accuracy = read_csv(out / "fig2.csv")[("validation accuracy", "lite", "mean")]
        assert accuracy[-1][2] == pytest.approx(last, abs=1e-3)
    printed = capsys.readouterr().out
    assert "fig5: left out, no run logged: MATH-500 accuracy, AIME24 accuracy, AIME25 accuracy" in printed
    assert "fig3 and fig4 have the same panels" in printed
    fig5 = read_csv(tmp_path / "steps" / "fig5.csv")
    assert {key[0] for key in fig5} == {
        "training reward",
        "perfect rate (all-solved)",
        "zero rate (none-solved)",
    }

    from PIL import Image

    width, height = Image.open(tmp_path / "steps" / "fig2.png").size
    assert width <= 1600 and height > 600  # 3 columns x 2 rows, not 5 in one 2520 x 408 strip
    assert "EntIncrease and EntDecrease" in (tmp_path / "steps" / "fig3.svg").read_text()
    assert "AsymGRPO against the baselines" in (tmp_path / "steps" / "fig4.svg").read_text()


def test_plot_output_that_is_a_file_is_refused_first(tmp_path, capsys):
    run = write_lite_metrics(tmp_path / "run", [{"step": 0, "actor/entropy": 1.0}])
    (tmp_path / "file").write_text("")
    assert main(["plot", "--runs", f"lite={run}", "--output", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("asym-rl plot: error: --output: ")
