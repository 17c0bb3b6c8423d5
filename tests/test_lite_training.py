"""``asym-rl lite`` end to end: the advantages drive learning (controls), resume is exact, the real entry point.

Controls start from the shipped default checkpoint (256 held-out prompts, greedy accuracy 0.477): the real
advantages must raise held-out accuracy, the sign-flipped ones (``--control_advantages negate``) must lower it.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from shared import read_rows  # noqa: E402  (tests/ is on sys.path: conftest.py)

from asym_openrlhf.algorithms.metrics import METRICS, OPENRLHF_ONLY
from asym_openrlhf.lite.train import Trainer, default_settings, train

CONTROL_STEPS = 20


@pytest.fixture(scope="module")
def control_accuracies(tmp_path_factory):
    """Held-out greedy accuracy before and after 20 steps (lr 5e-4), for real and negated advantages."""
    result = {}
    for control in ("none", "negate"):
        trainer = Trainer(
            default_settings(
                control_advantages=control,
                lr=5e-4,
                threads=1,
                output_dir=str(tmp_path_factory.mktemp(control)),
            )
        )
        before = trainer.evaluate()["eval/accuracy"]
        for _ in range(CONTROL_STEPS):
            trainer.step()
        result[control] = (before, trainer.evaluate()["eval/accuracy"])
    return result


@pytest.mark.slow  # three training runs
def test_real_advantages_raise_heldout_accuracy(control_accuracies):
    before, after = control_accuracies["none"]
    assert before == pytest.approx(0.477, abs=0.01)  # the shipped checkpoint (build.json: 0.4766)
    assert after > before + 0.05


def test_negated_advantages_lower_heldout_accuracy(control_accuracies):
    before, after = control_accuracies["negate"]
    assert after < before - 0.2


def _quick(out: Path, **overrides):
    return default_settings(quick=True, threads=1, output_dir=str(out), **overrides)


def _rows(out: Path) -> list[dict]:
    return read_rows(out / "metrics.jsonl")


def test_resume_after_kill_gives_the_same_metrics(tmp_path):
    common = dict(eval_every=3, save_every=3)
    train(_quick(tmp_path / "straight", steps=6, **common), progress=False)
    # A run stopped after step 3's checkpoint, with a row logged past it (a kill between log and checkpoint)...
    killed = tmp_path / "killed"
    train(_quick(killed, steps=3, **common), progress=False)
    (killed / "summary.json").unlink()
    with open(killed / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"step": 4, "rollout/accuracy": -1.0}) + "\n")
    # ...resumed to the same 6 steps, logs exactly what the uninterrupted run logged.
    train(_quick(killed, steps=6, **common), progress=False)
    assert _rows(killed) == _rows(tmp_path / "straight")


def test_changed_settings_refuse_to_resume(tmp_path):
    train(_quick(tmp_path, steps=1), progress=False)
    with pytest.raises(ValueError, match="^--output_dir: .*lr"):
        train(_quick(tmp_path, steps=1, lr=1e-3), progress=False)


@pytest.mark.slow  # a training run through the console script
def test_quick_tier_end_to_end_through_the_console_script(tmp_path):
    """`asym-rl lite --quick` in a subprocess (the real entry point): files, metric names, loadable policy."""
    out = tmp_path / "run"
    command = [
        str(Path(sys.executable).with_name("asym-rl")),
        "lite",
        "--quick",
        "--steps", "10",
        "--eval_every", "5",
        "--threads", "1",
        "--output_dir", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "held-out greedy accuracy" in done.stdout
    rows = _rows(out)
    assert [r["step"] for r in rows] == list(range(11))
    plain_metrics = {k for k in METRICS if "{" not in k} - OPENRLHF_ONLY
    assert plain_metrics <= set(rows[5]) and rows[5]["eval/accuracy"] is not None
    # pass@1 <= pass@G, both probabilities; G = 8 (the quick tier's group size)
    assert 0 <= rows[5]["eval/pass_at_1"] <= rows[5]["eval/pass_at_8"] <= 1
    for key in ("actor/entropy_pos", "actor/entropy_neg", "rollout/unique_correct_frac"):
        assert all(row[key] is None or math.isfinite(row[key]) for row in rows[1:]), key
    assert "eval/accuracy" not in rows[4]
    heldout = read_rows(out / "heldout.jsonl")
    assert len(heldout) == 30 and set(heldout[0]) == {"id", "problem", "answer"}
    assert heldout[0]["problem"].startswith("Q:") and heldout[0]["problem"].endswith("=A:")
    assert list((out / "tb").iterdir())  # tensorboard events

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "final")
    tokenizer = AutoTokenizer.from_pretrained(out / "final")
    assert model.config.hidden_size == 64 and tokenizer.eos_token == "<eos>"

    # The "evaluate it:" line runs as printed and scores what lite's own greedy eval scored.
    printed = next(line for line in done.stdout.splitlines() if line.startswith("evaluate it: "))
    command = shlex.split(printed.removeprefix("evaluate it: "))
    assert command[:2] == ["asym-eval", "run"]
    evaluated = subprocess.run(
        [str(Path(sys.executable).with_name("asym-eval")), *command[1:], "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert summary["benchmarks"]["lite"]["avg_at_k"] == pytest.approx(100 * rows[-1]["eval/accuracy"])


def test_bad_flag_is_one_line_naming_it(tmp_path):
    asym_rl = str(Path(sys.executable).with_name("asym-rl"))
    done = subprocess.run(
        [asym_rl, "lite", "--mini_batches", "0", "--output_dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "asym-rl lite: error: --mini_batches: must be an integer >= 1, got 0"
    ]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--task", "math"], "--task math: needs --model DIR"),
        (["--model", "{weightless}"], "--model: {weightless} has a config.json but no weights"),
        (["--output_dir", "{file}"], "--output_dir: {file} is a file"),
        (["--output_dir", "{file}/run"], "--output_dir: {file}/run lies under {file}, a file"),
    ],
)
def test_bad_paths_and_task_are_one_line_before_any_work(tmp_path, flags, message):
    weightless, file = tmp_path / "weightless", tmp_path / "file"
    weightless.mkdir()
    (weightless / "config.json").write_text("{}")
    file.write_text("")
    names = {"weightless": weightless, "file": file}
    argv = ["lite", "--output_dir", str(tmp_path / "out"), *(f.format(**names) for f in flags)]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("asym-rl")), *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"asym-rl lite: error: {message.format(**names)}"), lines


def test_resume_says_where_it_starts(tmp_path, capsys):
    train(_quick(tmp_path, steps=2, save_every=2), progress=True)
    (tmp_path / "summary.json").unlink()
    capsys.readouterr()
    train(_quick(tmp_path, steps=3, save_every=2), progress=True)
    assert f"resuming: 2 of 3 steps done ({tmp_path})" in capsys.readouterr().out


def test_a_beta_schedule_is_logged_as_it_moves(tmp_path):
    """`--asym.beta_schedule linear` over 4 steps: beta- goes 0.4, 0.6, 0.8, 1.0 in metrics.jsonl."""
    schedule = dict(asym_beta_schedule="linear", asym_beta_neg_end=1.0)
    settings = _quick(tmp_path, steps=4, eval_every=4, advantage_estimator="asym_grpo", **schedule)
    train(settings, progress=False)
    rows = _rows(tmp_path)[1:]
    assert [row["actor/beta_neg"] for row in rows] == pytest.approx([0.4, 0.6, 0.8, 1.0])
    assert {row["actor/beta_pos"] for row in rows} == {0.9}


def test_entropy_targeted_beta_follows_its_rule_and_resumes_with_its_beta(tmp_path):
    """beta+_{t+1} = clip(beta+_t + rate * (target - H_t), 0, 4), from the logged entropies; a run stopped after
    step 2's checkpoint and resumed logs exactly what the straight run logged."""
    control = dict(
        advantage_estimator="asym_grpo", asym_target_entropy=2.0, asym_adapt_rate=0.5, save_every=2
    )
    train(_quick(tmp_path / "straight", steps=4, eval_every=2, **control), progress=False)
    rows = _rows(tmp_path / "straight")[1:]
    beta = 0.9
    for row in rows:
        assert row["actor/beta_pos"] == pytest.approx(beta) and row["actor/beta_neg"] == 0.4
        beta = min(max(beta + 0.5 * (2.0 - row["actor/entropy"]), 0.0), 4.0)
    assert rows[-1]["actor/beta_pos"] > 0.9  # the tiny model's entropy (< 1 nat) is below 2: beta+ rose

    stopped = tmp_path / "stopped"
    train(_quick(stopped, steps=2, eval_every=2, **control), progress=False)
    (stopped / "summary.json").unlink()
    train(_quick(stopped, steps=4, eval_every=2, **control), progress=False)
    assert _rows(stopped) == _rows(tmp_path / "straight")


@pytest.mark.parametrize(
    "overrides,flag",
    [
        (
            dict(advantage_estimator="main", asym_target_entropy=1.0),
            "--asym.target_entropy",
        ),  # a preset fixes beta
        (dict(advantage_estimator="asym_grpo", asym_target_entropy=-1.0), "--asym.target_entropy"),
        (dict(advantage_estimator="asym_grpo", asym_target_entropy=1.0, asym_adapt="up"), "--asym.adapt"),
        (dict(advantage_estimator="asym_grpo", asym_adapt_rate=0.1), "--asym.adapt_rate"),
    ],
)
def test_bad_controller_flags_name_the_flag(overrides, flag):
    with pytest.raises(ValueError, match=f"^{flag}"):
        default_settings(**overrides)


@pytest.mark.parametrize(
    "control",
    [
        dict(cov_mode="clip_cov", cov_ratio=0.05),
        dict(cov_mode="kl_cov", cov_ratio=0.05),
        dict(top_entropy_rho=0.2),
    ],
    ids=["clip_cov", "kl_cov", "top_entropy"],
)
def test_token_control_runs_in_lite(tmp_path, control):
    """The token-level methods train through lite's one loss path: finite losses; Clip-Cov / KL-Cov act on
    tokens (actor/cov_frac, 0 without them; actor/clip_frac counts PPO clips only)."""
    train(_quick(tmp_path / "plain", steps=2, eval_every=2), progress=False)
    train(_quick(tmp_path / "ctl", steps=2, eval_every=2, **control), progress=False)
    plain, ours = _rows(tmp_path / "plain")[1:], _rows(tmp_path / "ctl")[1:]
    assert all(math.isfinite(row["actor/policy_loss"]) for row in ours)
    assert plain[0]["actor/cov_frac"] == 0
    if control.get("cov_mode"):
        assert 0 < ours[0]["actor/cov_frac"] < 0.1  # about the 0.05 asked for
    if control.get("cov_mode") == "kl_cov":  # KL-Cov has no clip at all
        assert ours[0]["actor/clip_frac"] == 0
    assert json.loads((tmp_path / "ctl" / "config.json").read_text())["token_control"][
        "cov_mode"
    ] == control.get("cov_mode")
