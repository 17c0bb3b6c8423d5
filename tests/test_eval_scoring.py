"""Avg@k and pass@k on hand-made samples; the Table 1 layout; the shipped benchmark files."""

import hashlib
from math import comb
from pathlib import Path

import pytest
from asym_eval.benchmarks import DATA_DIR, load_benchmark, parse_benchmark_spec
from asym_eval.scoring import (
    avg_at_k,
    benchmark_scores,
    markdown_table,
    mean_pass_at_k,
    pass_at_k,
    pass_at_k_curve,
    pass_curve_table,
    pass_k_values,
)


def test_avg_at_k_is_the_mean_of_per_problem_accuracies():
    # problem 1: 2 of 5, problem 2: 5 of 5, problem 3: 0 of 5 -> (0.4 + 1 + 0) / 3
    samples = [[1, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]]
    assert avg_at_k(samples) == pytest.approx(1.4 / 3)
    assert benchmark_scores(samples, 5)["avg_at_k"] == pytest.approx(100 * 1.4 / 3)


def test_pass_at_k_unbiased_estimator():
    assert pass_at_k(n=10, c=0, k=5) == 0.0
    assert pass_at_k(n=10, c=6, k=5) == 1.0  # fewer than k wrong samples: every draw has a correct one
    assert pass_at_k(n=10, c=3, k=1) == pytest.approx(0.3)  # pass@1 = c / n
    assert pass_at_k(n=4, c=1, k=2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(n=10, c=2, k=5) == pytest.approx(1 - comb(8, 5) / comb(10, 5))  # 1 - 56/252
    # pass@n is "any sample correct"
    samples = [[1, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]]
    assert mean_pass_at_k(samples, 5) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        pass_at_k(n=3, c=1, k=4)


def test_table_is_laid_out_like_table_1():
    scores = {
        "math500": {"k": 5, "avg_at_k": 89.33, "pass_at_k": 95.0},
        "aime24": {"k": 10, "avg_at_k": 39.33, "pass_at_k": 60.0},
    }
    table = markdown_table({"AsymGRPO": scores}).splitlines()
    assert (
        table[0]
        == "| method | MATH-500 (Avg@5) | AIME24 (Avg@10) | Avg | MATH-500 (pass@5) | AIME24 (pass@10) |"
    )
    assert table[2] == "| AsymGRPO | 89.33 | 39.33 | 64.33 | 95.00 | 60.00 |"


SHA256 = {
    "math500": ("3e7272b7589c1121fdef69927a2a9812c1e7e910724da89b69b6df087aa28f17", 500),
    "aime24": ("483199ae0095ded0f9e6690f55a44a769dad3a2a614c6fcd54951beb3d3dd0e7", 30),
    "aime25": ("a84aaf36bd9516210cf430ee2735df3361e2e758d63b1023036eadb6b167aa86", 30),
    "amc23": ("0a0d54fc48d4e33916b4b78f48fd32059a0dfad90a60d55c418ba58689d31571", 40),
    "olympiadbench": ("c99287118a94bd1889d0e27f7cb874c31975319537dc29d85896096976816988", 675),
}


@pytest.mark.parametrize("name", list(SHA256))
def test_shipped_benchmarks_match_their_checksums(name):
    path = DATA_DIR / f"{name}.jsonl"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256[name][0]
    assert SHA256[name][0] in (DATA_DIR / "README.md").read_text()
    assert len(load_benchmark(name, path).problems) == SHA256[name][1]


def test_olympiadbench_fields_are_read():
    problems = {
        p.problem_id: p for p in load_benchmark("olympiadbench", DATA_DIR / "olympiadbench.jsonl").problems
    }
    assert problems["2592"].tolerance == pytest.approx(0.1)
    assert sum(p.multiple_answers for p in problems.values()) == 94


def test_benchmark_spec_and_bad_files(tmp_path: Path):
    assert parse_benchmark_spec("math500, mine=x.jsonl") == [
        ("math500", DATA_DIR / "math500.jsonl"),
        ("mine", Path("x.jsonl")),
    ]
    with pytest.raises(ValueError, match="unknown benchmark 'gsm8k'"):
        parse_benchmark_spec("gsm8k")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "1+1", "answer": "2"}\n{"question": "no problem field"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: need a JSON object with 'problem' and 'answer'"):
        load_benchmark("bad", bad)


def test_pass_at_k_curve_covers_every_power_of_two_up_to_n():
    assert pass_k_values(1) == [1]
    assert pass_k_values(8) == [1, 2, 4, 8]
    assert pass_k_values(10) == [1, 2, 4, 8, 10]  # n itself closes the curve
    # one problem, 1 of 4 correct: pass@1 = 1/4, pass@2 = 1 - C(3,2)/C(4,2) = 1/2, pass@4 = 1; and one all-wrong
    curve = pass_at_k_curve([[1, 0, 0, 0], [0, 0, 0, 0]])
    assert curve == pytest.approx({1: 0.125, 2: 0.25, 4: 0.5})
    # problems with unequal samples: the curve stops at the fewest, where every problem has an estimate
    assert list(pass_at_k_curve([[1, 0, 0, 0, 0, 0, 0, 0], [1, 0]])) == [1, 2]
    scores = benchmark_scores([[1, 0, 0, 0], [0, 0, 0, 0]], 4)
    assert scores["pass_at"] == pytest.approx({"1": 12.5, "2": 25.0, "4": 50.0})
    assert pass_curve_table({"math500": scores}).splitlines()[2] == "| MATH-500 | 12.50 | 25.00 | 50.00 |"
    with pytest.raises(ValueError, match="n >= 1"):
        pass_k_values(0)
