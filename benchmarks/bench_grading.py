"""Grading speed: ``asym-eval grade`` against a plain single-process math-verify loop, same pairs, same run.

Reproduces the issue's target: ``asym-eval grade`` on 2,000 realistic responses takes at most 0.35x the time of
``for pair: verify(parse(gold), parse(response))``, with no loss of correctness.

The responses are MATH-500's reference solutions (real worked solutions, about 500 characters, answer in a
final \\boxed{}), four per problem as in an Avg@4 run: verbatim; with one digit of the boxed answer changed
(wrong; another problem's answer when it has no digit); with the answer spelled differently (x = ..., \\dfrac, a trailing period); and with no box
but a closing "The answer is ...". The script prints both times, the ratio, and each grader's agreement with
the known labels and with the test grading table (tests/test_eval_grading.py).

    .venv/bin/python benchmarks/bench_grading.py [--pairs 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def realistic_pairs(count: int, seed: int = 0) -> list[dict]:
    from asym_eval.benchmarks import DATA_DIR

    rows = [json.loads(line) for line in (DATA_DIR / "math500.jsonl").read_text().splitlines()]
    rng = random.Random(seed)
    pairs = []
    for index in range(count):
        row = rows[(index // 4) % len(rows)]
        solution, answer, variant = row["solution"], row["answer"], index % 4
        last = solution.rfind("\\boxed{")
        if last < 0:
            continue
        if variant == 1:  # wrong: a slip in one digit, the usual way a model misses (else another answer)
            wrong = _change_one_digit(answer, rng) or rng.choice(
                [r["answer"] for r in rows if r["answer"] != answer]
            )
            response, label = solution[:last] + "\\boxed{" + wrong + "}" + _after_box(solution, last), False
        elif variant == 2:  # same value, other spelling
            spelled = re.sub(r"\\frac", r"\\dfrac", answer).replace("\\left", "").replace("\\right", "")
            spelled = f"x = {spelled}" if re.fullmatch(r"-?\d+", answer) else spelled
            response, label = solution[:last] + "\\boxed{" + spelled + "}" + _after_box(solution, last), True
        elif variant == 3:  # no box: "The answer is ..."
            unboxed = solution[:last] + answer + _after_box(solution, last)
            response, label = unboxed + f"\n\nThe answer is ${answer}$.", True
        else:
            response, label = solution, True
        pairs.append({"response": response, "answer": answer, "label": label})
    return pairs


def _change_one_digit(answer: str, rng: random.Random) -> str | None:
    if "_" in answer:  # a digit in a base subscript (40_9) can make an equal number
        return None
    digits = [i for i, char in enumerate(answer) if char.isdigit()]
    if not digits:
        return None
    i = rng.choice(digits)
    return answer[:i] + rng.choice([d for d in "0123456789" if d != answer[i]]) + answer[i + 1 :]


def _after_box(solution: str, start: int) -> str:
    depth = 0
    for index in range(start + len("\\boxed"), len(solution)):
        depth += {"{": 1, "}": -1}.get(solution[index], 0)
        if depth == 0:
            return solution[index + 1 :]
    return ""


def plain_loop(pairs: list[dict]) -> list[bool]:
    """What a grader without this harness does: one process, parse both sides for every pair."""
    from math_verify import parse, verify

    return [bool(verify(parse(f"${p['answer']}$"), parse(p["response"]))) for p in pairs]


def grading_table() -> list[tuple[str, str, bool]]:
    spec = importlib.util.spec_from_file_location(
        "eval_grading_table", REPO / "tests" / "test_eval_grading.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GRADING_TABLE


def asym_eval_grade(pairs: list[dict], workers: int, folder: Path) -> tuple[list[dict], float]:
    """Runs the console command (start-up included); returns its rows and wall seconds."""
    source, target = folder / "pairs.jsonl", folder / "graded.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    command = [str(Path(sys.executable).with_name("asym-eval")), "grade", "--input", str(source)]
    command += ["--output", str(target), "--workers", str(workers)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "TQDM_DISABLE": "1"})
    seconds = time.perf_counter() - start
    return [json.loads(line) for line in target.read_text().splitlines()], seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pairs", type=int, default=2000, help="number of (response, answer) pairs (default 2000)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="asym-eval grade --workers")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each; the best time of each is kept")
    args = parser.parse_args()

    pairs = realistic_pairs(args.pairs)
    labels = [p["label"] for p in pairs]
    mean_chars = sum(len(p["response"]) for p in pairs) / len(pairs)
    print(
        f"{len(pairs)} pairs, {len({p['answer'] for p in pairs})} distinct answers, {mean_chars:.0f} chars on average"
    )

    # Alternate the two and keep each one's best time: the machine may be shared, and load comes and goes.
    baseline_s = ours_s = float("inf")
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            start = time.perf_counter()
            baseline = plain_loop(pairs)
            baseline_s = min(baseline_s, time.perf_counter() - start)
            graded, seconds = asym_eval_grade(pairs, args.workers, Path(folder))
            ours_s = min(ours_s, seconds)
        table = grading_table()
        table_pairs = [{"response": r, "answer": a} for r, a, _ in table]
        table_graded, _ = asym_eval_grade(table_pairs, args.workers, Path(folder))
    ours = [row["correct"] for row in graded]

    def agreement(verdicts, truth):
        return sum(v == t for v, t in zip(verdicts, truth))

    table_truth = [expected for _, _, expected in table]
    print(
        f"plain math-verify loop (1 process): {baseline_s:7.2f} s  ({len(pairs) / baseline_s:6.1f} pairs/s)"
    )
    print(
        f"asym-eval grade ({args.workers} workers, incl. start): {ours_s:7.2f} s  ({len(pairs) / ours_s:6.1f} pairs/s)"
    )
    print(f"ratio asym-eval / plain: {ours_s / baseline_s:.3f}x  (target <= 0.35x)")
    # Two workers need two free cores: on a machine busy with other jobs the ratio says little.
    print(f"load average over the last minute: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        f"agreement with labels: asym-eval {agreement(ours, labels)}/{len(pairs)}, plain {agreement(baseline, labels)}/{len(pairs)}"
    )
    print(
        f"grading table: asym-eval {agreement([r['correct'] for r in table_graded], table_truth)}/{len(table)}, "
        f"plain {agreement(plain_loop(table_pairs), table_truth)}/{len(table)}"
    )
    reasons: dict[str, int] = {}
    for row in graded:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    print(
        "decided by:",
        ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items(), key=lambda x: -x[1])),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
