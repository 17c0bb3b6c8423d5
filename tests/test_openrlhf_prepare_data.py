"""``asym-rl prepare-data`` through the real console script: MATH train and MATH-500 as chat prompts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from shared import read_rows  # noqa: E402  (tests/ is on sys.path: conftest.py)

sys.path.insert(0, str(Path(__file__).parent))

from asym_openrlhf.data import INSTRUCTION, read_problems  # noqa: E402

pytestmark = pytest.mark.slow  # runs asym-rl prepare-data in subprocesses

ASYM_RL = Path(sys.executable).parent / "asym-rl"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, chat_tokenizer):
    folder = tmp_path_factory.mktemp("prepared")
    command = [
        str(ASYM_RL),
        "prepare-data",
        "--tokenizer",
        chat_tokenizer,
        "--output_dir",
        str(folder / "out"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return folder / "out", result.stdout


def read(path: Path) -> list[dict]:
    return read_rows(path)


def test_train_drops_the_two_empty_answers(prepared):
    out, stdout = prepared
    rows = read(out / "math_train.jsonl")
    assert len(rows) == 7498
    assert "7498 training prompts (2 with an empty answer dropped)" in stdout
    ids = {row["id"] for row in rows}
    assert "train/number_theory/7115.json" not in ids and "train/number_theory/7117.json" not in ids
    assert all(row["label"].strip() for row in rows)
    assert {row["datasource"] for row in rows} == {"math_train"}


def test_prompt_is_the_chat_template_of_problem_and_instruction(prepared):
    out, _ = prepared
    first = read(out / "math_train.jsonl")[0]
    assert first["id"] == "train/algebra/0.json" and first["label"] == "0"
    assert first["prompt"].startswith("<|user|>Let \\[f(x) = \\left\\{")
    # the tiny template marks Qwen3's non-thinking mode the way the real one does, after the assistant opening
    assert first["prompt"].endswith(f"\n\n{INSTRUCTION}\n<|assistant|><think></think>")


def test_validation_is_math500(prepared):
    out, _ = prepared
    rows = read(out / "math500.jsonl")
    assert len(rows) == 500 and {row["datasource"] for row in rows} == {"math500"}
    assert rows[0]["label"] == "\\left( 3, \\frac{\\pi}{2} \\right)"


def test_bad_input_names_file_and_line(tmp_path, chat_tokenizer):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": 3}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken.jsonl:2: needs string 'problem'"):
        read_problems(broken)
    tokenizer = str(tmp_path / "tok")
    shutil.copytree(chat_tokenizer, tokenizer)
    command = [str(ASYM_RL), "prepare-data", "--tokenizer", tokenizer, "--output_dir", str(tmp_path / "o")]
    result = subprocess.run(
        [*command, "--train_file", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("broken.jsonl:2: needs string 'problem' and an 'answer'")
    )
    assert not (tmp_path / "o" / "math_train.jsonl").exists()
    result = subprocess.run(
        [str(ASYM_RL), "prepare-data", "--tokenizer", str(tmp_path / "nothing"), "--output_dir", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--tokenizer" in result.stderr.strip().splitlines()[-1]


def test_non_utf8_and_bom_and_an_output_under_a_file(tmp_path, prepared):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"problem": "1+1?", "answer": "2"}\n{"problem": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(ValueError, match=r"latin.jsonl:2: not UTF-8 \(byte 0xe9"):
        read_problems(latin)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"problem": "1+1?", "answer": "2"}\n')
    assert read_problems(bom) == [{"problem": "1+1?", "answer": "2"}]
    (tmp_path / "file").write_text("")
    tokenizer = str(prepared[0].parent / "tokenizer")
    command = [
        str(ASYM_RL),
        "prepare-data",
        "--tokenizer",
        tokenizer,
        "--output_dir",
        str(tmp_path / "file" / "o"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "error: --output_dir: " in result.stderr.strip().splitlines()[-1]
