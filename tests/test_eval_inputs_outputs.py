"""What a user hands ``asym-eval`` and where it writes: bad inputs and outputs get one line naming the file,
line or flag before any work; a failed start leaves the run folder open; prompts longer than the model's
context are refused up front, or truncated or skipped on request (hf backend, a tiny model built here)."""

import json
from pathlib import Path

import pytest
from asym_eval.cli import main
from asym_eval.files import read_jsonl
from asym_eval.tiny_model import build_tiny_model

FLAGS = ["--backend", "hf", "--prompt_format", "raw", "--max_tokens", "4", "--temperature", "0", "--n", "1"]
FLAGS += ["--workers", "1"]


def write_lines(path: Path, rows, raw_prefix: bytes = b"") -> Path:
    path.write_bytes(
        raw_prefix + "".join(row if isinstance(row, str) else json.dumps(row) + "\n" for row in rows).encode()
    )
    return path


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


PAIR = {"response": "\\boxed{3}", "answer": "3"}


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            json.dumps(PAIR).encode() + b'\n{"response": "\xff", "answer": "1"}\n',
            ":2: not UTF-8 (byte 0xff at column 15)",
        ),
        (
            json.dumps(PAIR).encode() + b'\n\n{"response": 1,\n',
            ":3: not JSON (Expecting property name enclosed in double quotes at column 16)",
        ),
        (b"[1, 2]\n", ":1: expected a JSON object, got list"),
        (b'{"response": "x"}\n', ":1: need JSON with 'response' and 'answer'"),
    ],
)
def test_grade_input_errors_name_file_and_line(tmp_path, capsys, content, expected):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(content)
    assert (
        main(["grade", "--input", str(path), "--output", str(tmp_path / "out.jsonl"), "--workers", "1"]) == 2
    )
    assert one_error_line(capsys).startswith(f"asym-eval grade: error: {path}{expected}")


def test_a_byte_order_mark_is_read_and_blank_lines_are_counted(tmp_path, capsys):
    path = write_lines(
        tmp_path / "pairs.jsonl", [PAIR, "\n", {**PAIR, "response": "\\boxed{4}"}], b"\xef\xbb\xbf"
    )
    assert read_jsonl(path) == ([(1, PAIR), (3, {**PAIR, "response": "\\boxed{4}"})], 1)
    out = tmp_path / "graded.jsonl"
    assert main(["grade", "--input", str(path), "--output", str(out), "--workers", "1"]) == 0
    assert [row["correct"] for row in map(json.loads, out.read_text().splitlines())] == [True, False]
    assert "(1 blank input lines skipped" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["folder", "missing/graded.jsonl", "file/graded.jsonl"])
def test_grade_output_is_checked_before_grading(tmp_path, capsys, where):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    path = write_lines(tmp_path / "pairs.jsonl", [PAIR])
    output = tmp_path / where
    assert main(["grade", "--input", str(path), "--output", str(output), "--workers", "1"]) == 2
    assert one_error_line(capsys).startswith("asym-eval grade: error: --output: ")
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("flag, value", [("--timeout_s", "nan"), ("--timeout_s", "inf"), ("--workers", "0")])
def test_nan_timeout_and_zero_workers_are_refused(tmp_path, capsys, flag, value):
    path = write_lines(tmp_path / "pairs.jsonl", [PAIR])
    with pytest.raises(SystemExit):
        main(["grade", "--input", str(path), "--output", str(tmp_path / "g.jsonl"), flag, value])
    assert f"argument {flag}: " in capsys.readouterr().err


def test_empty_benchmark_and_weightless_model_are_refused(tiny_model, tmp_path, capsys):
    empty = write_lines(tmp_path / "empty.jsonl", ["\n"])
    argv = [
        "run",
        "--model",
        str(tiny_model),
        "--benchmarks",
        f"mine={empty}",
        "--output_dir",
        str(tmp_path / "o"),
    ]
    assert main(argv + FLAGS) == 2
    assert (
        one_error_line(capsys)
        == f"asym-eval run: error: --benchmarks: mine: {empty} holds no problem (an empty file scores nothing)"
    )
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text("{}")
    bench = write_lines(tmp_path / "b.jsonl", [{"problem": "Q:1+2=A:", "answer": "3"}])
    argv = [
        "run",
        "--model",
        str(weightless),
        "--benchmarks",
        f"b={bench}",
        "--output_dir",
        str(tmp_path / "o"),
    ]
    assert main(argv + FLAGS) == 2
    assert "--model: " in one_error_line(capsys) and not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["run", "select"])
def test_output_dir_that_is_a_file_is_refused_first(tiny_model, tmp_path, capsys, command):
    bench = write_lines(tmp_path / "b.jsonl", [{"problem": "Q:1+2=A:", "answer": "3"}])
    (tmp_path / "file").write_text("")
    source = ["--model", str(tiny_model)] if command == "run" else ["--checkpoints", str(tmp_path)]
    argv = [command, *source, "--benchmarks", f"b={bench}", "--output_dir", str(tmp_path / "file" / "o")]
    assert main(argv + (["--select_on", "b"] if command == "select" else []) + FLAGS) == 2
    assert one_error_line(capsys).startswith(f"asym-eval {command}: error: --output_dir: ")


def test_a_failed_start_does_not_lock_the_folder(tiny_model, tmp_path, capsys):
    """A start that fails before any sample (here: a prompt too long for the context) writes no config.json,
    and a stale config.json without samples (an older version's) is replaced; one with samples still binds."""
    bench = write_lines(tmp_path / "b.jsonl", [{"problem": "Q:1+2=A:", "answer": "3"}])
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text(
        json.dumps({"settings": {"dtype": "auto", "grader_version": 4}, "benchmarks": {}})
    )
    argv = ["run", "--model", str(tiny_model), "--benchmarks", f"b={bench}", "--output_dir", str(out)]
    assert main(argv + FLAGS + ["--dtype", "float32"]) == 0
    assert json.loads((out / "config.json").read_text())["settings"]["dtype"] == "float32"
    capsys.readouterr()
    assert main(argv + FLAGS + ["--dtype", "auto"]) == 2  # now it holds results
    assert "was made with dtype='float32', now 'auto'" in one_error_line(capsys)


def test_prompts_longer_than_the_context_are_refused_truncated_or_skipped(tmp_path, capsys):
    model = build_tiny_model(tmp_path / "short", max_position_embeddings=16)
    rows = [{"problem": "Q:1+2=A:", "answer": "3"}, {"problem": "Q:" + "1+" * 20 + "1=A:", "answer": "21"}]
    bench = write_lines(tmp_path / "b.jsonl", rows)
    argv = ["run", "--model", str(model), "--benchmarks", f"b={bench}"] + FLAGS
    assert main(argv + ["--output_dir", str(tmp_path / "refused")]) == 2
    line = one_error_line(capsys)
    assert line.startswith(
        "asym-eval run: error: --benchmarks: b: 1 of 2 prompts do not fit the model's context (longest "
    )
    assert "limit 16" in line and "--long_prompts truncate" in line
    assert not (tmp_path / "refused" / "config.json").exists()
    assert main(argv + ["--output_dir", str(tmp_path / "cut"), "--long_prompts", "truncate"]) == 0
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["benchmarks"]["b"]["problems"] == 2
    assert main(argv + ["--output_dir", str(tmp_path / "skip"), "--long_prompts", "skip"]) == 0
    scores = json.loads((tmp_path / "skip" / "summary.json").read_text())["benchmarks"]["b"]
    assert scores["problems"] == 1 and scores["skipped_long_prompts"] == 1


def test_resume_says_how_much_is_done(tiny_model, tmp_path, capsys):
    rows = [{"problem": f"Q:{i}+1=A:", "answer": str(i + 1)} for i in range(3)]
    bench = write_lines(tmp_path / "b.jsonl", rows)
    out = tmp_path / "r"
    argv = ["run", "--model", str(tiny_model), "--benchmarks", f"b={bench}", "--output_dir", str(out)]
    assert main(argv + FLAGS) == 0
    lines = (out / "samples.jsonl").read_text().splitlines()
    (out / "samples.jsonl").write_text("\n".join(lines[:2]) + "\n")  # a kill after two prompts
    capsys.readouterr()
    assert main(argv + FLAGS) == 0
    assert "b: resuming: 2 of 3 prompts done" in capsys.readouterr().out


def test_plot_marks_a_benchmark_a_run_did_not_evaluate_as_na(tmp_path, capsys):
    for name, scores in (("a", {"math500": 40.0, "aime24": 0.0}), ("b", {"math500": 45.0})):
        (tmp_path / name).mkdir()
        summary = {"benchmarks": {bench: {"avg_at_k": value} for bench, value in scores.items()}}
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    output = tmp_path / "bars.png"
    assert (
        main(["plot", "--runs", f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}", "--output", str(output)]) == 0
    )
    out = capsys.readouterr().out
    assert "note: b: aime24 was not evaluated; drawn as n/a" in out and "a: aime24" not in out  # a real 0.0
    assert output.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", "--runs", f"a={tmp_path / 'a'}", "--output", str(tmp_path / "no" / "x.png")]) == 2
    assert one_error_line(capsys).startswith("asym-eval plot: error: --output: ")
