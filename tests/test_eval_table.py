"""``asym-eval table`` on real ``asym-eval run`` and ``select`` outputs: the real commands, benchmarks, grader
and files, with generation scripted (a backend that answers a known number of samples correctly), so every
Avg@k is known. The table must show those numbers in Table 1's order, mark the best, put the paper's beside
them, and footnote the runs made with other settings. The paper's numbers live in asym_eval/paper.py; the
reproduction guide prints the same."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from asym_eval import harness
from asym_eval.cli import main
from asym_eval.paper import TABLE1, TABLE1_COLUMNS
from asym_eval.scoring import PAPER_BENCHMARKS

pytestmark = pytest.mark.slow  # evaluates several runs with the harness (11 s of set-up)

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = ",".join(TABLE1_COLUMNS)
LIMIT = 2  # problems per benchmark
# model folder -> fraction of k answered correctly on a benchmark's first problem (the second gets none), plus
# one more correct sample per column of Table 1 (so columns differ), capped at k; base does well on AMC23.
FRACTIONS = {"base": 0.2, "global_step10_hf": 0.4, "global_step20_hf": 0.6, "mine": 1.0}
BONUS = {("base", "amc23"): 8}


def correct_samples(model: str, benchmark: str, k: int) -> int:
    extra = TABLE1_COLUMNS.index(benchmark) + BONUS.get((model, benchmark), 0)
    return min(k, round(FRACTIONS[model] * k) + extra)


class ScriptedTokenizer:
    """Just enough tokenizer for the harness: a prompt 'encodes' to its index in ``prompts``."""

    chat_template = "scripted"

    def __init__(self):
        self.prompts: list[str] = []

    def apply_chat_template(self, messages, **kwargs):
        return messages[0]["content"]

    def __call__(self, text, add_special_tokens=True):
        self.prompts.append(text)
        return {"input_ids": [len(self.prompts) - 1]}


class ScriptedBackend:
    """Answers ``correct_samples`` of a benchmark's first problem's k samples with the reference answer."""

    def __init__(self, model_dir: str):
        self.model = Path(model_dir).name
        self.tokenizer = ScriptedTokenizer()

    def generate(self, prompt_ids, k, sampling, seeds):
        responses = []
        for ids in prompt_ids:
            prompt = self.tokenizer.prompts[ids[0]]
            benchmark, index, answer = ANSWERS[prompt.split("\nPlease reason")[0]]
            correct = correct_samples(self.model, benchmark, k) if index == 0 else 0
            responses.append([f"so \\boxed{{{answer}}}"] * correct + ["I do not know."] * (k - correct))
        return responses


ANSWERS: dict[str, tuple[str, int, str]] = {}  # problem text -> (benchmark, index in it, answer)


def expected_avg(model: str, benchmark: str, k: int) -> float:
    """Avg@k (%) the scripted backend gives: (correct / k on the first problem + 0 on the second) / 2."""
    return 100.0 * correct_samples(model, benchmark, k) / k / LIMIT


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """A base-model run (paper settings), a selection over two checkpoints, and a run with other settings."""
    from asym_eval.benchmarks import load_benchmark, parse_benchmark_spec

    for name, path in parse_benchmark_spec(BENCHMARKS):
        for index, problem in enumerate(load_benchmark(name, path, LIMIT).problems):
            ANSWERS[problem.problem] = (name, index, problem.answer)
    root = tmp_path_factory.mktemp("table")
    for model in ("base", "mine", "ckpt/global_step10_hf", "ckpt/global_step20_hf"):
        (root / "models" / model).mkdir(parents=True)
        (root / "models" / model / "config.json").write_text("{}")
        (root / "models" / model / "model.safetensors").write_bytes(
            b""
        )  # the scripted backend never reads it
    patch = pytest.MonkeyPatch()
    patch.setattr(harness, "make_backend", lambda name, model_dir, options: ScriptedBackend(model_dir))
    common = ["--benchmarks", BENCHMARKS, "--limit", str(LIMIT), "--backend", "hf", "--workers", "1"]
    try:
        argv = ["run", "--model", str(root / "models/base"), "--output_dir", str(root / "eval/base")]
        assert main(argv + common) == 0
        argv = [
            "select",
            "--checkpoints",
            str(root / "models/ckpt"),
            "--output_dir",
            str(root / "eval/asymgrpo"),
        ]
        assert main(argv + common) == 0
        other = ["--n", "4", "--temperature", "0.6", "--prompt_format", "raw"]
        argv = ["run", "--model", str(root / "models/mine"), "--output_dir", str(root / "eval/mine")]
        assert main(argv + common + other) == 0
    finally:
        patch.undo()
    return {name: root / "eval" / name for name in ("base", "asymgrpo", "mine")}


def table(capsys, outputs, *flags) -> str:
    capsys.readouterr()
    runs = [f"{name}={folder}" for name, folder in outputs.items()]
    assert main(["table", "--runs", *runs, *flags]) == 0
    return capsys.readouterr().out


def test_csv_cells_are_the_runs_scores_and_avg_is_the_mean_of_five(outputs, capsys):
    rows = {
        row["method"]: row for row in csv.DictReader(io.StringIO(table(capsys, outputs, "--format", "csv")))
    }
    assert list(rows) == ["base", "asymgrpo", "mine"]
    winner = json.loads((outputs["asymgrpo"] / "selection.json").read_text())["winner"]
    assert winner["step"] == 20  # 0.6 beats 0.4 on MATH-500
    summaries = {
        "base": json.loads((outputs["base"] / "summary.json").read_text())["benchmarks"],
        "asymgrpo": winner["benchmarks"],
        "mine": json.loads((outputs["mine"] / "summary.json").read_text())["benchmarks"],
    }
    models = {"base": "base", "asymgrpo": "global_step20_hf", "mine": "mine"}
    for name, row in rows.items():
        for benchmark in TABLE1_COLUMNS:
            k = 4 if name == "mine" else PAPER_BENCHMARKS[benchmark][1]
            assert float(row[benchmark]) == pytest.approx(summaries[name][benchmark]["avg_at_k"], abs=0.005)
            assert float(row[benchmark]) == pytest.approx(expected_avg(models[name], benchmark, k), abs=0.005)
        five = [summaries[name][b]["avg_at_k"] for b in TABLE1_COLUMNS]
        assert float(row["avg"]) == pytest.approx(sum(five) / 5, abs=0.005)
    # base: 1/5, 3/10, 4/10, 10/10, 5/5 correct on the first problem, 0 on the second: 10, 15, 20, 50, 50 -> 29
    assert [rows["base"][b] for b in TABLE1_COLUMNS] == ["10.00", "15.00", "20.00", "50.00", "50.00"]
    assert [rows[name]["avg"] for name in rows] == ["29.00", "40.00", "50.00"]
    # Ties share the mark: AMC23 50.00 for base and mine, Olympiad 50.00 for all three.
    assert rows["mine"]["best_in"] == "math500;aime24;aime25;amc23;olympiadbench;avg"
    assert rows["base"]["best_in"] == "amc23;olympiadbench"
    assert rows["asymgrpo"]["best_in"] == "olympiadbench"


def test_markdown_marks_the_best_and_footnotes_other_settings(outputs, capsys):
    text = table(capsys, outputs)
    lines = text.splitlines()
    assert lines[0] == "| method | MATH-500 | AIME24 | AIME25 | AMC23 | Olympiad | Avg |"
    assert lines[2] == "| base [1] | 10.00 | 15.00 | 20.00 | **50.00** | **50.00** | 29.00 |"
    assert lines[4].startswith("| mine [3] | **50.00** |") and lines[4].endswith("| **50.00** |")
    notes = {line.split("]")[0] + "]": line for line in lines if re.match(r"\[\d\] ", line)}
    # Every run used 2 problems per benchmark; only "mine" changed k, temperature and the prompt.
    assert notes["[1]"] == "[1] base: only the first 2 problems"
    assert "AIME24 k=4 (paper 10)" in notes["[3]"] and "MATH-500 k=4 (paper 5)" in notes["[3]"]
    assert "temperature 0.6 (paper 0.4)" in notes["[3]"] and "prompt format raw (paper chat)" in notes["[3]"]
    assert "temperature" not in notes["[2]"]


def test_paper_numbers_and_differences_beside_each_cell(outputs, capsys):
    lines = table(capsys, outputs, "--paper").splitlines()
    base = next(line for line in lines if line.startswith("| base"))
    # Qwen3-4B (base) in the paper: MATH-500 81.60, AMC23 63.75, Avg 46.91; ours 10.00, 50.00, 29.00.
    assert "| 10.00 (81.60, -71.60) |" in base and base.endswith("| 29.00 (46.91, -17.91) |")
    assert "| **50.00** (63.75, -13.75) |" in base
    asymgrpo = next(line for line in lines if line.startswith("| asymgrpo"))
    assert "| 35.00 (39.33, -4.33) | 40.00 (28.67, +11.33) |" in asymgrpo  # AIME24, AIME25
    assert any(line.startswith("no Table 1 row named mine (--paper)") for line in lines)


def test_latex_and_a_grader_version_that_differs(outputs, capsys, tmp_path):
    config = json.loads((outputs["mine"] / "config.json").read_text())
    config["settings"]["grader_version"] = "old"
    copy = tmp_path / "mine"
    copy.mkdir()
    (copy / "config.json").write_text(json.dumps(config))
    (copy / "summary.json").write_text((outputs["mine"] / "summary.json").read_text())
    text = table(capsys, {**outputs, "mine": copy}, "--format", "latex")
    assert text.startswith(r"\begin{tabular}{lrrrrrr}")
    assert r"mine$^{3}$ & \textbf{50.00} &" in text
    assert r"\par{\footnotesize $^{3}$ mine: " in text and "grader version old (rows differ" in text


def test_bad_runs_give_one_line_errors(outputs, tmp_path, capsys):
    for runs, message in (
        ([f"a={tmp_path}"], "--runs: " + str(tmp_path) + " has no summary.json"),
        (["nameless"], "--runs: expected NAME=OUT"),
        ([f"a={outputs['base']}", f"a={outputs['mine']}"], "--runs: each NAME once"),
    ):
        assert main(["table", "--runs", *runs]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("asym-eval table: error: ") and message in err and "\n" not in err, err


def test_the_guides_table_prints_the_papers_numbers():
    """docs/reproduce.md's Table 1 columns equal asym_eval/paper.py, row by row (script train_<row>.sh)."""
    lines = (REPO / "docs" / "reproduce.md").read_text(encoding="utf-8").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| script |"))
    found = {}
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        script = re.search(r"qwen3-4b/train_(\w+)\.sh", cells[0])
        row = script.group(1) if script else "base" if cells[1] == "Qwen3-4B (base)" else None
        if row and cells[7] != "—":  # scripts beyond Table 1 have no paper numbers
            found[row] = (cells[1], tuple(float(c) for c in cells[2:7]), float(cells[7]))
    assert found == TABLE1
    for method, five, avg in TABLE1.values():
        assert abs(sum(five) / 5 - avg) <= 0.0101, method  # the paper averaged unrounded numbers
