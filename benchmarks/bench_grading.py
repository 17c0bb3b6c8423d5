"""Grading speed: ``asym-eval grade`` against a plain single-process math-verify loop, same pairs, same run.

Reproduces the issue's target: ``asym-eval grade`` on 2,000 realistic responses takes at most 0.35x the time of
``for pair: verify(parse(gold), parse(response))``, with no loss of correctness.

The responses are MATH-500's reference solutions (real worked solutions, about 500 characters), four per
problem as in an Avg@4 run, one of the four wrong; even problems get the first four shapes, odd ones three of
the unboxed ones and one of their wrong variants:
  boxed               verbatim, the answer in a final \\boxed{}
  boxed_wrong         one digit of the boxed answer changed (another problem's answer when it has no digit)
  respelled           the boxed answer spelled differently (x = ..., \\dfrac, no \\left/\\right)
  several_boxes       a list answer boxed part by part, a pair boxed one component at a time, one value
                      boxed twice
  final_phrase        no box, "The final answer is $X$. I hope it is correct." (and _wrong)
  display_end         no box, the answer in a closing \\[ X \\] (and _wrong)
  final_answer_line   no box, a closing "**Final Answer:** $X$"
The script prints both times, the ratio, and each grader's agreement with the known labels (per shape) and
with the test grading tables (tests/test_eval_grading.py).

    .venv/bin/python benchmarks/bench_grading.py [--pairs 2000] [--workers 2] [--repeats 2]
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


# Four samples per problem, as in an Avg@4 run, one of them wrong: the first four shapes on one problem, the
# next four on the next (its wrong one alternates between the last two).
SHAPES = [
    "boxed",
    "boxed_wrong",
    "respelled",
    "several_boxes",
    "final_phrase",
    "display_end",
    "final_answer_line",
    "final_phrase_wrong",
    "display_end_wrong",
]


def realistic_pairs(count: int, seed: int = 0) -> list[dict]:
    from asym_eval.benchmarks import DATA_DIR

    rows = [json.loads(line) for line in (DATA_DIR / "math500.jsonl").read_text().splitlines()]
    rows = [row for row in rows if "\\boxed{" in row["solution"]]
    rng = random.Random(seed)
    pairs = []
    for index in range(count):
        problem, sample = divmod(index, 4)
        row = rows[problem % len(rows)]
        shape = (
            SHAPES[sample] if problem % 2 == 0 else SHAPES[4 + sample + (sample == 3 and problem % 4 == 3)]
        )
        solution, answer = row["solution"], row["answer"]
        last = solution.rfind("\\boxed{")
        before, after = solution[:last], _after_box(solution, last)
        # wrong: a slip in one digit, the usual way a model misses (else another problem's answer)
        wrong = _change_one_digit(answer, rng) or rng.choice(
            [r["answer"] for r in rows if r["answer"] != answer]
        )
        final = wrong if shape.endswith("_wrong") else answer
        unboxed = before + final + after
        if shape == "boxed":
            response = solution
        elif shape == "boxed_wrong":
            response = before + "\\boxed{" + wrong + "}" + after
        elif shape == "respelled":
            spelled = re.sub(r"\\frac", r"\\dfrac", answer).replace("\\left", "").replace("\\right", "")
            spelled = f"x = {spelled}" if re.fullmatch(r"-?\d+", answer) else spelled
            response = before + "\\boxed{" + spelled + "}" + after
        elif shape == "several_boxes":  # one value: boxed twice, as models often do
            parts = _boxed_in_parts(answer)
            response = (
                before + parts + after if parts else solution + f"\n\nThe answer is $\\boxed{{{answer}}}$."
            )
        elif shape.startswith("final_phrase"):
            response = unboxed + f"\n\nThe final answer is ${final}$. I hope it is correct."
        elif shape.startswith("display_end"):
            response = unboxed + f"\n\nPutting everything together:\n\\[ {final} \\]"
        else:  # final_answer_line
            response = unboxed + f"\n\n**Final Answer:** ${final}$"
        pairs.append({"response": response, "answer": answer, "label": final == answer, "shape": shape})
    return pairs


def _boxed_in_parts(answer: str) -> str | None:
    """``1, 2`` -> ``\\boxed{1}, \\boxed{2}``; ``(3, 4)`` -> ``(\\boxed{3}, \\boxed{4})``; None for one value."""
    from asym_eval.grading import split_top_level

    plain = answer.replace("\\left", "").replace("\\right", "").strip()
    bracketed = plain[:1] == "(" and plain[-1:] == ")" and len(split_top_level(plain[1:-1])) == 2
    parts = split_top_level(plain[1:-1] if bracketed else plain)
    if len(parts) < 2:
        return None
    boxes = ", ".join("\\boxed{" + part + "}" for part in parts)
    return f"({boxes})" if bracketed else boxes


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


def plain_loop_in_a_fresh_process(source: Path) -> tuple[list[bool], float]:
    """``plain_loop`` on the pairs in ``source`` in a new process, timed without the imports. A fresh process
    each time, as ``asym-eval grade`` gets: a second pass in one process finds sympy's caches full of these very
    pairs (about 20% faster here), which no grading run has."""
    command = [sys.executable, __file__, "--plain_loop", str(source)]
    out = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return out["verdicts"], out["seconds"]


def _run_plain_loop(source: str) -> int:
    import math_verify  # noqa: F401  (imported before the clock starts)

    pairs = [json.loads(line) for line in Path(source).read_text().splitlines()]
    start = time.perf_counter()
    verdicts = plain_loop(pairs)
    print(json.dumps({"verdicts": verdicts, "seconds": time.perf_counter() - start}))
    return 0


def grading_table() -> list[tuple[str, str, bool]]:
    spec = importlib.util.spec_from_file_location(
        "eval_grading_table", REPO / "tests" / "test_eval_grading.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GRADING_TABLE + [(r, a, e) for a, r, e in module.MATH_VERIFY_READS]


def write_pairs(pairs: list[dict], folder: Path) -> Path:
    source = folder / "pairs.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return source


def asym_eval_grade(pairs: list[dict], workers: int, folder: Path) -> tuple[list[dict], float]:
    """Runs the console command (start-up included); returns its rows and wall seconds."""
    source, target = write_pairs(pairs, folder), folder / "graded.jsonl"
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
    parser.add_argument("--plain_loop", metavar="PAIRS", help=argparse.SUPPRESS)  # the fresh process's side
    args = parser.parse_args()
    if args.plain_loop:
        return _run_plain_loop(args.plain_loop)
    if args.pairs < 8 or args.workers < 1 or args.repeats < 1:
        parser.error("--pairs must be >= 8, --workers and --repeats >= 1")

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
            baseline, seconds = plain_loop_in_a_fresh_process(write_pairs(pairs, Path(folder)))
            baseline_s = min(baseline_s, seconds)
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
        f"plain math-verify loop (1 fresh process, imports not timed): {baseline_s:7.2f} s  "
        f"({len(pairs) / baseline_s:6.1f} pairs/s)"
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
    for shape in SHAPES:
        rows = [i for i, p in enumerate(pairs) if p["shape"] == shape]
        ours_ok = sum(ours[i] == labels[i] for i in rows)
        plain_ok = sum(baseline[i] == labels[i] for i in rows)
        print(f"  {shape:<19} asym-eval {ours_ok}/{len(rows)}, plain {plain_ok}/{len(rows)}")
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
