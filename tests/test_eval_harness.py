"""``asym-eval run/select/plot/grade`` end to end on the CPU with a tiny model built here (hf backend),
resume after a simulated kill, and refusal of a mismatched configuration."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from asym_eval import harness
from asym_eval import select as select_module
from asym_eval.cli import main
from asym_eval.generation import BackendOptions, HFBackend
from asym_eval.tiny_model import build_tiny_model
from shared import read_rows  # noqa: E402  (tests/ is on sys.path: conftest.py)

PROBLEMS = ["Q:4+5=A:", "Q:1+2=A:", "Q:7+7=A:", "Q:3+9=A:", "Q:8+1=A:"]
ANSWERS = ["9", "3", "14", "12", "9"]
# Tiny budgets: a handful of characters per response, sampled so the per-prompt seeds matter.
RUN_FLAGS = [
    "--backend",
    "hf",
    "--prompt_format",
    "raw",
    "--max_tokens",
    "6",
    "--temperature",
    "0.8",
    "--n",
    "2",
]


@pytest.fixture(scope="module")
def benchmark_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "add.jsonl"
    rows = [{"id": f"p{i}", "problem": q, "answer": a} for i, (q, a) in enumerate(zip(PROBLEMS, ANSWERS))]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_samples(folder: Path) -> list[dict]:
    return read_rows(folder / "samples.jsonl")


def run_argv(model: Path, benchmark_file: Path, output_dir: Path) -> list[str]:
    """``asym-eval run`` on the tiny model and the test benchmark, before the sampling flags."""
    return [
        "run",
        "--model",
        str(model),
        "--benchmarks",
        f"add={benchmark_file}",
        "--output_dir",
        str(output_dir),
    ]


@pytest.fixture(scope="module")
def full_run(tiny_model, benchmark_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full")
    argv = run_argv(tiny_model, benchmark_file, out)
    assert main(argv + RUN_FLAGS + ["--workers", "1"]) == 0
    return out


def test_run_writes_samples_summary_and_table(full_run, capsys):
    samples = read_samples(full_run)
    assert [(s["problem_id"], s["sample_index"]) for s in samples] == [
        (f"p{i}", j) for i in range(5) for j in range(2)
    ]
    assert set(samples[0]) >= {
        "benchmark",
        "problem_id",
        "sample_index",
        "response",
        "extracted",
        "correct",
        "reason",
    }
    summary = json.loads((full_run / "summary.json").read_text())
    expected = 100 * sum(s["correct"] for s in samples) / len(samples)
    assert summary["benchmarks"]["add"]["avg_at_k"] == pytest.approx(expected)
    assert summary["benchmarks"]["add"]["k"] == 2 and summary["benchmarks"]["add"]["problems"] == 5
    assert (full_run / "table.md").read_text().startswith("| method | add (Avg@2) | Avg | add (pass@2) |")
    # the pass@k curve, k = 1 and 2 from 2 samples: pass@1 is Avg@k, pass@2 "either sample correct"
    by_problem = {}
    for s in samples:
        by_problem.setdefault(s["problem_id"], []).append(int(s["correct"]))
    either = 100 * sum(max(hits) for hits in by_problem.values()) / len(by_problem)
    assert summary["benchmarks"]["add"]["pass_at"] == pytest.approx({"1": expected, "2": either})
    assert "| benchmark | pass@1 | pass@2 |" in (full_run / "table.md").read_text()


def test_plot_pass_curve_from_run_outputs(full_run, tmp_path, capsys):
    """``asym-eval plot --pass_curve``: the image and a CSV whose rows are the runs' summary.json curves."""
    output = tmp_path / "passk.png"
    assert (
        main(["plot", "--runs", f"a={full_run}", f"b={full_run}", "--pass_curve", "--output", str(output)])
        == 0
    )
    assert output.stat().st_size > 1000
    curve = json.loads((full_run / "summary.json").read_text())["benchmarks"]["add"]["pass_at"]
    rows = output.with_suffix(".csv").read_text().splitlines()
    assert rows[0] == "curve,k,mean,low,high"
    assert [row.split(",")[:3] for row in rows[1:3]] == [["a", k, repr(curve[k])] for k in ("1", "2")]
    assert main(["plot", "--sweep", str(full_run), "--pass_curve", "--output", str(output)]) == 2
    assert "--pass_curve: draws run outputs" in capsys.readouterr().err


class KilledAfter:
    """Wraps a backend; raises (like a kill) in the chunk after ``chunks`` chunks, and counts the prompts it
    generated."""

    def __init__(self, backend, chunks=None):
        self.backend, self.chunks, self.generated, self.calls = backend, chunks, 0, 0
        self.tokenizer, self.name, self.default_chunk_size = backend.tokenizer, backend.name, 8

    def generate(self, prompt_ids, n_samples, sampling, seeds):
        if self.chunks is not None and self.calls == self.chunks:
            raise KeyboardInterrupt
        self.calls += 1
        self.generated += len(prompt_ids)
        return self.backend.generate(prompt_ids, n_samples, sampling, seeds)


def test_resume_after_a_kill_keeps_finished_samples(
    full_run, tiny_model, benchmark_file, tmp_path, monkeypatch
):
    config = harness.RunConfig(
        model=str(tiny_model),
        benchmarks=f"add={benchmark_file}",
        output_dir=str(tmp_path),
        n={"add": 2},
        temperature=0.8,
        max_tokens=6,
        prompt_format="raw",
        workers=1,
        chunk_size=2,
    )
    backend = HFBackend(str(tiny_model), BackendOptions())
    with pytest.raises(KeyboardInterrupt):
        harness.run_evaluation(config, backend=KilledAfter(backend, chunks=1))
    assert len(read_samples(tmp_path)) == 4  # the first chunk, 2 prompts x 2 samples, saved before the kill
    with (tmp_path / "samples.jsonl").open("a") as handle:
        handle.write('{"benchmark": "add", "problem_index": 3, "sampl')  # a line torn by the kill

    resumed = KilledAfter(backend)
    harness.run_evaluation(config, backend=resumed)
    assert resumed.generated == 3 and resumed.calls == 2  # only the missing prompts, in chunks of 2
    strip = [
        {k: s[k] for k in ("problem_id", "sample_index", "response", "correct")}
        for s in read_samples(tmp_path)
    ]
    assert strip == [
        {k: s[k] for k in ("problem_id", "sample_index", "response", "correct")}
        for s in read_samples(full_run)
    ]


def test_mismatched_configuration_is_refused(full_run, tiny_model, benchmark_file, capsys):
    argv = run_argv(tiny_model, benchmark_file, full_run)
    flags = [flag if flag != "0.8" else "0.5" for flag in RUN_FLAGS]
    assert main(argv + flags) == 2
    assert "made with temperature=0.8, now 0.5" in capsys.readouterr().err
    assert main(argv + RUN_FLAGS + ["--n", "add=3"]) == 2
    assert "benchmark add was made with" in capsys.readouterr().err
    # Same settings: nothing to generate, the summary is rewritten from the saved samples.
    before = (full_run / "samples.jsonl").read_text()
    assert main(argv + RUN_FLAGS) == 0
    assert (full_run / "samples.jsonl").read_text() == before


def test_bad_flags_give_one_line_errors(tiny_model, tmp_path, capsys):
    base = ["run", "--model", str(tiny_model), "--output_dir", str(tmp_path), "--backend", "hf"]
    assert main(base + ["--n", "aime99=3", "--benchmarks", "math500"]) == 2
    assert "--n: 'aime99' is not among --benchmarks" in capsys.readouterr().err
    assert main(base + ["--top_p", "1.5"]) == 2
    assert "--top_p" in capsys.readouterr().err
    assert main(["run", "--model", str(tmp_path), "--output_dir", str(tmp_path), "--backend", "hf"]) == 2
    assert "--model" in capsys.readouterr().err


def write_final(folder: Path, step: int, seed: int | None = None) -> Path:
    """A run's final policy as training leaves it: the trainer's step marker, then the model saved after it."""
    folder.mkdir(parents=True)
    (folder / select_module.FINAL_MARKER).write_text(json.dumps({"global_step": step}))
    if seed is None:
        (folder / "config.json").write_text("{}")
    else:
        build_tiny_model(folder, seed=seed)
    return folder


def test_select_and_plot(tiny_model, benchmark_file, tmp_path):
    checkpoints = tmp_path / "ckpts"
    for step, seed in [(20, 1), (10, 2)]:
        build_tiny_model(checkpoints / f"global_step{step}", seed=seed)
    shutil.copytree(checkpoints / "global_step20", checkpoints / "best_global_step20")  # saved at one step
    final = write_final(tmp_path / "final", 30, seed=3)
    out = tmp_path / "select"
    bench = f"add={benchmark_file},add2={benchmark_file}"
    argv = ["select", "--checkpoints", str(checkpoints), "--benchmarks", bench, "--select_on", "add"]
    flags = ["--output_dir", str(out), "--limit", "2", "--workers", "1"] + RUN_FLAGS + ["--n", "add2=3"]
    assert main(argv + flags + ["--final", str(final)]) == 0
    selection = json.loads((out / "selection.json").read_text())
    assert [row["step"] for row in selection["sweep"]] == [10, 20, 30]
    assert selection["sweep"][1]["same_weights"] == [str(checkpoints / "best_global_step20")]
    assert {p.name for p in out.iterdir() if p.is_dir()} == {"global_step10", "global_step20", "final_step30"}
    best = max(selection["sweep"], key=lambda row: (row["avg_at_k"], -row["step"]))
    assert selection["winner"]["step"] == best["step"]
    assert set(selection["winner"]["benchmarks"]) == {"add", "add2"}
    assert (
        selection["winner"]["benchmarks"]["add2"]["k"] == 3
        and selection["winner"]["benchmarks"]["add"]["k"] == 2
    )
    assert f"step {best['step']}" in selection["reason"]
    assert main(["plot", "--sweep", str(out), "--output", str(tmp_path / "sweep.png")]) == 0
    runs = [f"a={out / 'global_step10'}", f"b={out / 'global_step20'}"]
    assert main(["plot", "--runs", *runs, "--output", str(tmp_path / "bars.png")]) == 0
    assert (tmp_path / "sweep.png").stat().st_size > 1000 and (tmp_path / "bars.png").stat().st_size > 1000


class FakeEvaluation:
    """Stands in for ``run_evaluation`` in ``select``: a fixed add score per model folder, every call counted."""

    def __init__(self, scores: dict[str, float]):
        self.scores, self.calls = scores, []

    def __call__(self, config):
        name, out = Path(config.model).name, Path(config.output_dir)
        self.calls.append((name, out.name, config.benchmarks.count("=")))
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(f"| {name} |\n")
        names = [item.split("=")[0] for item in config.benchmarks.split(",")]
        return {"benchmarks": {n: {"avg_at_k": self.scores[name]} for n in names}, "mean_avg_at_k": 0.0}


CHECKPOINT_FOLDERS = ["global_step20_hf", "best_global_step20_hf", "global_step40_hf", "_actor"]
FINAL_CASES = [
    # (final's step, scores by folder, winner, sweep's steps, folders scored on the selection benchmark)
    (
        50,
        {"global_step20_hf": 60, "global_step40_hf": 70, "final": 80},
        50,
        [20, 40, 50],
        ["global_step20_hf", "global_step40_hf", "final_step50"],
    ),
    (
        50,
        {"global_step20_hf": 60, "global_step40_hf": 70, "final": 65},
        40,
        [20, 40, 50],
        ["global_step20_hf", "global_step40_hf", "final_step50"],
    ),
    (
        50,
        {"global_step20_hf": 60, "global_step40_hf": 70, "final": 70},
        40,
        [20, 40, 50],
        ["global_step20_hf", "global_step40_hf", "final_step50"],
    ),  # tie: earlier
    (
        40,
        {"global_step20_hf": 60, "global_step40_hf": 70, "final": 99},
        40,
        [20, 40],
        ["global_step20_hf", "global_step40_hf"],
    ),  # same step: scored once
    (
        None,
        {"global_step20_hf": 60, "global_step40_hf": 50},
        20,
        [20, 40],
        ["global_step20_hf", "global_step40_hf"],
    ),
]


@pytest.mark.parametrize("final_step, scores, winner, steps, scored", FINAL_CASES)
def test_select_scores_each_step_once_and_takes_the_final_policy(
    tmp_path, monkeypatch, benchmark_file, final_step, scores, winner, steps, scored
):
    checkpoints = tmp_path / "run" / "ckpt"
    for name in CHECKPOINT_FOLDERS:
        (checkpoints / name).mkdir(parents=True)
        (checkpoints / name / "config.json").write_text("{}")
    evaluation = FakeEvaluation(scores)
    monkeypatch.setattr(select_module, "run_evaluation", evaluation)
    out = tmp_path / "select"
    argv = ["select", "--checkpoints", str(checkpoints), "--output_dir", str(out), "--backend", "hf"]
    argv += ["--benchmarks", f"add={benchmark_file},add2={benchmark_file}", "--select_on", "add"]
    if final_step is not None:
        argv += ["--final", str(write_final(tmp_path / "run" / "final", final_step))]
    assert main(argv) == 0
    selection = json.loads((out / "selection.json").read_text())
    assert [row["step"] for row in selection["sweep"]] == steps
    assert [run for _, run, n in evaluation.calls if n == 1] == scored  # the sweep, one benchmark each
    assert len(evaluation.calls) == len(scored) + 1  # plus the winner on both benchmarks
    assert selection["winner"]["step"] == winner and evaluation.calls[-1][2] == 2
    step20 = selection["sweep"][0]
    assert Path(step20["checkpoint"]).name == "global_step20_hf"
    assert [Path(p).name for p in step20["same_weights"]] == ["best_global_step20_hf"]
    table = (out / "selection.md").read_text()
    assert "| 20 | global_step20_hf (also best_global_step20_hf) |" in table
    if final_step == 40:
        assert "| 40 | global_step40_hf (also final (--final)) |" in table


def test_select_final_errors_and_hint(tmp_path, monkeypatch, capsys, benchmark_file):
    checkpoints = tmp_path / "run" / "ckpt"
    (checkpoints / "global_step20_hf").mkdir(parents=True)
    (checkpoints / "global_step20_hf" / "config.json").write_text("{}")
    monkeypatch.setattr(
        select_module, "run_evaluation", FakeEvaluation({"global_step20_hf": 1.0, "final": 2.0})
    )
    argv = [
        "select",
        "--checkpoints",
        str(checkpoints),
        "--output_dir",
        str(tmp_path / "o"),
        "--backend",
        "hf",
    ]
    argv += ["--benchmarks", f"add={benchmark_file}", "--select_on", "add"]
    final = tmp_path / "run" / "final"
    assert main(argv + ["--final", str(final)]) == 2
    assert "--final: " in capsys.readouterr().err
    final.mkdir()
    (final / "config.json").write_text("{}")
    assert main(argv + ["--final", str(final)]) == 2
    assert f"--final: {final} has no {select_module.FINAL_MARKER}" in capsys.readouterr().err
    for bad in ['{"global_step": "40"}', '{"step": 40}', "[40]", "{", '{"global_step": -1}']:
        (final / select_module.FINAL_MARKER).write_text(bad)
        assert main(argv + ["--final", str(final)]) == 2
        assert 'must hold {"global_step": N}' in capsys.readouterr().err, bad
    (final / select_module.FINAL_MARKER).write_text('{"global_step": 40}')
    os.utime(final / "config.json", (1, 1))  # the model older than the marker: the final save did not finish
    assert main(argv) == 0  # without --final: a note that the final policy is there
    assert f"add --final {final}" in capsys.readouterr().out
    assert main(argv + ["--final", str(final)]) == 0
    assert "config.json is older than" in capsys.readouterr().err


def test_grade_command_through_its_console_script(tmp_path):
    rows = [
        {"response": "so \\boxed{27}", "answer": "27"},
        {"response": "so \\boxed{\\frac{1}{2}}", "answer": "0.5"},
        {"response": "\\boxed{84, 69}", "answer": "69,84", "is_multiple_answer": True},
        {"response": "\\boxed{9^{9^{9^9}}}", "answer": "3"},
        {"response": "no answer", "answer": "3"},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    script = Path(sys.executable).with_name("asym-eval")
    command = [
        str(script),
        "grade",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "out.jsonl"),
        "--timeout_s",
        "1",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    graded = read_rows(tmp_path / "out.jsonl")
    assert [row["correct"] for row in graded] == [True, True, True, False, False]
    assert graded[3]["reason"] == "timeout" and graded[4]["reason"] == "no_answer"
    assert "graded 5 pairs: 3 correct" in result.stdout


def test_every_flag_has_help():
    import argparse

    from asym_eval.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in subparsers.choices.items():
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"asym-eval {name} {action.option_strings[0]} has no help"


def test_regrade_rewrites_the_grades_from_saved_responses(
    full_run, tiny_model, benchmark_file, tmp_path, capsys
):
    from asym_eval.grading import GRADER_VERSION

    out = tmp_path / "run"
    shutil.copytree(full_run, out)
    samples = read_samples(out)
    # as an older grader left the folder: another version recorded, every verdict the other way
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["grader_version"] == GRADER_VERSION
    config["settings"]["grader_version"] = GRADER_VERSION - 1
    (out / "config.json").write_text(json.dumps(config))
    old = [{**s, "correct": not s["correct"], "reason": "old"} for s in samples]
    (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in old))

    run = run_argv(tiny_model, benchmark_file, out) + RUN_FLAGS + ["--workers", "1"]
    assert main(run) == 2  # no summary mixes two graders' verdicts
    assert f"run `asym-eval regrade {out}` first" in capsys.readouterr().err
    assert main(["regrade", str(out), "--workers", "1"]) == 2  # a file of our own: its path is needed
    assert "--benchmarks: unknown benchmark 'add'" in capsys.readouterr().err
    assert main(["regrade", str(out), "--benchmarks", f"add={benchmark_file}", "--workers", "1"]) == 0
    assert f"{len(samples)} verdicts changed" in capsys.readouterr().out
    assert read_samples(out) == samples
    assert (out / "summary.json").read_text() == (full_run / "summary.json").read_text()
    assert json.loads((out / "config.json").read_text())["settings"]["grader_version"] == GRADER_VERSION
    assert main(run) == 0  # the folder is this grader's again
    assert main(["regrade", str(tmp_path / "nothing")]) == 2
    assert "OUT: " in capsys.readouterr().err
