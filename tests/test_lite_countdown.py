"""Countdown (``asym-rl lite --task countdown``): the expression parser is exact and safe, the problem set is
fixed and every puzzle has several solutions, and a short run from the shipped checkpoint logs finite metrics.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
from shared import read_rows  # noqa: E402  (tests/ is on sys.path: conftest.py)

from asym_openrlhf.lite.tasks import CountdownTask, countdown_expressions, evaluate_countdown
from asym_openrlhf.lite.tiny import TIERS
from asym_openrlhf.lite.train import default_settings, train


@pytest.fixture(scope="module")
def task() -> CountdownTask:
    return CountdownTask(TIERS["countdown"].heldout_size)


def problem_of(task: CountdownTask, problem_id: str):
    return next(p for p in task.heldout + task.train if p.id == problem_id)


@pytest.mark.parametrize(
    "text, numbers, expected",
    [
        ("3*7+9", (3, 7, 9), Fraction(30)),
        ("9+7*3", (3, 7, 9), Fraction(30)),  # precedence: * before +
        ("9-7-3", (3, 7, 9), Fraction(-1)),  # chains read left to right
        ("9-(7-3)", (3, 7, 9), Fraction(5)),
        ("9/3/3", (3, 3, 9), Fraction(1)),
        ("7/3*9", (3, 7, 9), Fraction(21)),  # exact: 7/3 is not rounded
        ("9/7*3", (3, 7, 9), Fraction(27, 7)),
        ("((3*7))+(9)", (3, 7, 9), Fraction(30)),  # redundant parentheses are fine
        ("(" * 30 + "3" + ")" * 30, (3,), Fraction(3)),  # nesting within the length bound
        ("7+3", (3, 7, 9), Fraction(10)),  # not every number need be used
        ("3*9+3", (3, 7, 9), ValueError),  # 3 used twice
        ("37-7", (3, 7, 9), ValueError),  # no concatenation: 37 is not given
        ("5*6", (3, 7, 9), ValueError),  # numbers not given
        ("03*7+9", (3, 7, 9), ValueError),  # leading zero
        ("3**2", (3, 7, 9), ValueError),
        ("3^2", (3, 7, 9), ValueError),
        ("3x7+9", (3, 7, 9), ValueError),
        ("-3+7", (3, 7, 9), ValueError),  # no unary minus
        ("+3+7", (3, 7, 9), ValueError),  # nor unary plus
        ("3*7+9 ", (3, 7, 9), ValueError),  # no spaces
        ("3*7+9=30", (3, 7, 9), ValueError),
        ("3.0*7+9", (3, 7, 9), ValueError),
        ("\u0663*7+9", (3, 7, 9), ValueError),  # a non-ASCII digit
        ("(3*7+9", (3, 7, 9), ValueError),  # unbalanced
        ("3*7)+9", (3, 7, 9), ValueError),
        ("()", (3, 7, 9), ValueError),
        ("", (3, 7, 9), ValueError),
        ("3*", (3, 7, 9), ValueError),
        ("9/(3-3)", (3, 3, 9), ZeroDivisionError),
        ("(" * 40 + "3" + ")" * 40, (3,), ValueError),  # longer than MAX_EXPRESSION_CHARS
        ("9" * 100_000, (9,), ValueError),  # rejected by length before any parsing
    ],
)
def test_evaluate_countdown(text, numbers, expected):
    if isinstance(expected, type):
        with pytest.raises(expected):
            evaluate_countdown(text, numbers)
    else:
        value = evaluate_countdown(text, numbers)
        assert isinstance(value, Fraction) and value == expected


@pytest.mark.parametrize(
    "problem_id, response, expected",
    [
        ("3,7,9=30", "\\boxed{3*7+9}", 1.0),
        ("3,7,9=30", "\\boxed{9+7*3}", 1.0),  # another correct solution
        ("3,7,9=30", "noise \\boxed{3+7+9}\\boxed{(7*3)+9}", 1.0),  # the last box counts
        ("3,7,9=30", "\\boxed{9+3*7}\\boxed{3+7+9}", 0.0),
        ("3,7,9=30", "\\boxed{3+7+9}", 0.0),  # wrong value (19)
        ("3,7,9=30", "\\boxed{3*9+3}", 0.0),  # right value, 3 used twice
        ("3,7,9=30", "\\boxed{37-7}", 0.0),  # right value by concatenation
        ("3,7,9=30", "\\boxed{30}", 0.0),
        ("3,7,9=30", "3*7+9", 0.0),  # no box
        ("3,7,9=30", "\\boxed{}", 0.0),
        ("3,7,9=30", "\\boxed{3*7+9", 0.0),  # unterminated box
        ("6,8,8=16", "\\boxed{8+8}", 1.0),  # a repeated number may be used as often as it is given
        ("6,8,8=16", "\\boxed{6/(8-8)}", 0.0),  # division by zero
    ],
)
def test_reward(task, problem_id, response, expected):
    assert task.reward(response, problem_of(task, problem_id)) == expected


def test_expressions_are_enumerated_with_the_fewest_parentheses():
    expressions = countdown_expressions((3, 7, 9))
    solutions = sorted(text for text, (value, _) in expressions.items() if value == 30)
    assert solutions == ["3*7+9", "7*3+9", "9+3*7", "9+7*3"]  # 21 + 9 and its reorderings, nothing else
    assert len({expressions[text][1] for text in solutions}) == 1  # one class up to commutativity
    # 1,2,9 -> 3: 1+2 and 9/(1+2), each in two orders: two classes.
    found = {text: c for text, (value, c) in countdown_expressions((1, 2, 9)).items() if value == 3}
    assert sorted(found) == ["1+2", "2+1", "9/(1+2)", "9/(2+1)"] and len(set(found.values())) == 2


def test_problem_set_is_fixed_disjoint_and_every_puzzle_has_several_solutions(task):
    again = CountdownTask(TIERS["countdown"].heldout_size)
    assert [p.id for p in task.heldout] == [p.id for p in again.heldout]
    assert task.puzzles == again.puzzles
    assert (len(task.heldout), len(task.train)) == (256, 1287)
    assert not {p.id for p in task.heldout} & {p.id for p in task.train}
    assert task.heldout[0].prompt == "Q:3,7,9=30A:"
    for problem in task.heldout + task.train:
        puzzle = task.puzzles[problem.id]
        assert len(puzzle.solutions) >= 2 and puzzle.target not in puzzle.numbers
        assert all(task.reward(task.target(problem, i), problem) == 1.0 for i in range(len(puzzle.solutions)))
    # a spread of difficulty in the held-out split: puzzles a pair solves, and puzzles that need all three
    fewest = [task.puzzles[p.id].min_numbers for p in task.heldout]
    assert 0.2 < fewest.count(2) / len(fewest) < 0.8 and set(fewest) == {2, 3}


def test_the_tokenizer_spells_every_prompt_and_solution(task):
    from transformers import AutoTokenizer

    checkpoint = TIERS["countdown"].checkpoint_dir
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    texts = [p.prompt + task.target(p, i) for p in task.train[:200] for i in range(2)]
    assert tokenizer.unk_token_id not in {i for t in texts for i in tokenizer(t)["input_ids"]}
    # the same char-level vocabulary as the addition checkpoint, byte for byte
    addition = TIERS["default"].checkpoint_dir / "tokenizer.json"
    assert (checkpoint / "tokenizer.json").read_bytes() == addition.read_bytes()


def test_countdown_defaults_and_quick_refusal():
    settings = default_settings(task="countdown")
    assert settings.model == str(TIERS["countdown"].checkpoint_dir) and settings.tier == "countdown"
    assert (settings.max_new_tokens, settings.heldout_size, settings.lr) == (20, 256, 1e-4)
    assert default_settings(task="countdown", lr=3e-4).lr == 3e-4 and default_settings().lr == 2e-4
    with pytest.raises(ValueError, match="^--quick: .*countdown"):
        default_settings(task="countdown", quick=True)


NEW_METRICS = (
    "actor/entropy",
    "actor/entropy_pos",
    "actor/entropy_neg",
    "rollout/unique_correct_frac",
    "eval/accuracy",
    "eval/pass_at_1",
    "eval/pass_at_8",
)


def test_short_run_from_the_shipped_checkpoint_logs_finite_metrics(tmp_path):
    settings = default_settings(
        task="countdown", steps=2, eval_every=1, eval_sampled_prompts=16, threads=1, output_dir=str(tmp_path)
    )
    train(settings, progress=False)
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [row["step"] for row in rows] == [0, 1, 2]
    for row in rows[1:]:
        for key in NEW_METRICS:
            assert row[key] is not None and math.isfinite(row[key]), (row["step"], key, row[key])
    start = TIERS["countdown"].checkpoint_dir / "build.json"
    assert rows[0]["eval/accuracy"] == pytest.approx(
        json.loads(start.read_text())["heldout_greedy"], abs=0.01
    )


def test_pass_curve_samples_give_pass_at_k_for_every_power_of_two_at_start_and_end(tmp_path):
    settings = default_settings(
        task="countdown", steps=2, eval_every=1, eval_sampled_prompts=6, pass_curve_samples=24, threads=1,
        output_dir=str(tmp_path),
    )  # fmt: skip
    train(settings, progress=False)
    rows = read_rows(tmp_path / "metrics.jsonl")
    curve_keys = [f"eval/pass_at_{k}" for k in (1, 2, 4, 8, 16, 24)]
    for row in (rows[0], rows[2]):  # the start and the end: n = 24 samples per prompt
        curve = [row[key] for key in curve_keys]
        assert all(0 <= a <= b <= 1 for a, b in zip(curve, curve[1:])), curve  # pass@k never falls with k
        # 6 prompts x 24 samples: pass@1 is a multiple of 1/144
        assert row["eval/pass_at_1"] * 144 == pytest.approx(round(row["eval/pass_at_1"] * 144))
    # between them, G = 8 samples: the curve stops at 8
    assert "eval/pass_at_8" in rows[1] and "eval/pass_at_16" not in rows[1]
    assert rows[1]["eval/pass_at_1"] * 48 == pytest.approx(round(rows[1]["eval/pass_at_1"] * 48))
    with pytest.raises(ValueError, match="^--pass_curve_samples: must be an integer >= 0, got -1"):
        default_settings(task="countdown", pass_curve_samples=-1)
