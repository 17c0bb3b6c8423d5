"""``asym-rl advantage-table`` through its real console script, and the shared estimator flags."""

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asym_openrlhf.cli import main as cli_main
from asym_openrlhf.cli.flags import add_estimator_flags

ASYM_RL = shutil.which("asym-rl", path=str(Path(sys.executable).parent))


def run_cli(*args):
    return subprocess.run([ASYM_RL, "advantage-table", *args], capture_output=True, text=True, timeout=120)


def test_json_rows_for_the_main_preset():
    result = run_cli("--preset", "main", "--group_size", "8", "--json")
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    assert table["estimator"] == "main" and table["group_size"] == 8
    rows = table["rows"]
    assert [r["num_correct"] for r in rows] == list(range(9))
    assert rows[0]["adv_pos"] is None and rows[8]["adv_neg"] is None  # no such rollout
    # c = 1: A_pos = 7^0.9 = 5.7622, A_neg = -(1/7)^0.4 = -0.4592
    assert rows[1]["p"] == 0.125
    assert rows[1]["adv_pos"] == pytest.approx(7**0.9, abs=1e-9)
    assert rows[1]["adv_neg"] == pytest.approx(-((1 / 7) ** 0.4), abs=1e-9)
    assert rows[0]["adv_neg"] == 0.0 and rows[8]["adv_pos"] == 0.0  # Eq. 10 boundaries, β > 0


def test_table_is_readable_and_options_are_shown():
    result = run_cli(
        "--estimator", "asym_grpo", "--asym.beta_pos", "0.5", "--asym.beta_neg", "0.5", "--group_size", "4"
    )
    assert result.returncode == 0, result.stderr
    assert "beta_pos=0.5, beta_neg=0.5, flip=none" in result.stdout
    assert f"{math.sqrt(3):+.4f}" in result.stdout  # c = 1 of 4: sqrt(3)


@pytest.mark.parametrize(
    "args,flag",
    [
        (["--asym.beta_pos", "-1"], "--asym.beta_pos"),
        (["--group_size", "1"], "--group_size"),
        (["--asym.flip", "sideways"], "--asym.flip"),
        (["--estimator", "pass_at_k", "--pass_k.k", "9", "--group_size", "8"], "--pass_k.k"),
        (["--preset", "pos_only", "--asym.beta_pos", "0.2"], "--asym.beta_pos"),
        (["--estimator", "nope"], "--advantage_estimator"),
    ],
)
def test_bad_values_exit_nonzero_with_one_line_naming_the_flag(args, flag):
    result = run_cli(*args)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip() and "Warning" not in line]
    assert len(lines) == 1 and flag in lines[0], result.stderr


def test_plot_writes_a_png(tmp_path):
    out = tmp_path / "curves.png"
    assert cli_main.main(["advantage-table", "--preset", "ent_decrease", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_list_names_every_estimator(capsys):
    from asym_openrlhf.algorithms.advantages import ESTIMATORS

    assert cli_main.main(["advantage-table", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(ESTIMATORS)


def test_every_flag_has_help():
    parser = argparse.ArgumentParser()
    add_estimator_flags(parser)
    for name in cli_main.SUBCOMMANDS:
        sub, module = cli_main.build_parser([name])
        module_parser = argparse.ArgumentParser()
        module.add_arguments(module_parser)
        for action in module_parser._actions + parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and len(action.help) > 10, (name, action.option_strings)


def test_a_beta_schedule_prints_the_curves_at_a_step_and_plots_three(tmp_path, capsys):
    # linear beta- 0.4 -> 1.0 over 11 steps (0..10): 0.7 at step 5
    argv = [
        "advantage-table",
        "--asym.beta_schedule",
        "linear",
        "--asym.beta_neg_end",
        "1.0",
        "--group_size",
        "4",
    ]
    assert cli_main.main([*argv, "--total_steps", "11", "--step", "5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[3]["adv_neg"] == pytest.approx(-(3.0**0.7))  # p = 3/4: -(0.75/0.25)^0.7
    out = tmp_path / "schedule.png"
    assert cli_main.main([*argv, "--total_steps", "11", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli_main.main([*argv, "--step", "3"]) == 2  # a schedule needs --total_steps
    assert "--total_steps" in capsys.readouterr().err


def test_json_carries_beta_and_the_step_and_the_header_is_rounded(capsys):
    # linear beta- 0.4 -> 1.0 over 100 steps (0..99): at step 49, 0.4 + 0.6 * 49/99 = 0.69697
    argv = [
        "advantage-table",
        "--asym.beta_schedule",
        "linear",
        "--asym.beta_neg_end",
        "1.0",
        "--total_steps",
        "100",
    ]
    assert cli_main.main([*argv, "--step", "49", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["options"]["beta_pos"] == 0.9 and record["options"]["beta_neg"] == pytest.approx(
        0.4 + 0.6 * 49 / 99
    )
    assert (record["step"], record["total_steps"]) == (49, 100)
    assert cli_main.main([*argv, "--step", "49"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("asym_grpo (beta_pos=0.9, beta_neg=0.697, flip=none"), header


def test_plot_at_a_step_draws_that_step(tmp_path, monkeypatch):
    from asym_openrlhf.cli import advantage_table

    drawn = []
    monkeypatch.setattr(
        advantage_table, "plot_curves", lambda path, name, g, options, title="": drawn.append(options)
    )
    argv = [
        "advantage-table",
        "--asym.beta_schedule",
        "linear",
        "--asym.beta_neg_end",
        "1.0",
        "--total_steps",
        "11",
    ]
    assert cli_main.main([*argv, "--step", "5", "--plot", str(tmp_path / "a.png")]) == 0
    assert drawn[0].beta_neg == pytest.approx(0.7)  # step 5 of 0..10


@pytest.mark.parametrize("where", ["folder", "missing/a.png", "file/a.png"])
def test_plot_path_is_checked_before_drawing(tmp_path, capsys, where):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    assert cli_main.main(["advantage-table", "--plot", str(tmp_path / where)]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("asym-rl advantage-table: error: --plot: ")
    )
