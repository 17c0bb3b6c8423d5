"""The training reward under a step's load: one worker process (the old path) against the default pool.

OpenRLHF calls the reward file once per sample, each call in its own thread (``asyncio.to_thread``, whose default
executor has min(32, CPUs + 4) threads). This script grades one engine's share of a realistic step through
``asym_openrlhf/reward/math_reward.py`` the same way, with the lengths and shapes of 4,096-token outputs:

  cot_right / cot_wrong  a long chain of thought (8-14k characters) ending in a boxed answer, its own or another
                         problem's
  truncated              a chain of thought cut at the length limit: no box, mid-formula
  degenerate             one sentence repeated to 12-18k characters (a policy stuck in a loop)
  runaway                a 12-18k-character sum inside $...$ (parser-bound: the slowest shape)

Each configuration runs in a fresh process (the reward's grading service is built once per process):
``--workers 1`` grades one long response at a time, as the old single child process behind a lock did; the
default is the pool's own size (``ASYM_GRADING_WORKERS``, else min(4, CPUs)). The first few responses warm
the workers up and are not timed. It prints responses per second, p50 and p99 latency, and the ratio.

    .venv/bin/python benchmarks/bench_reward_step.py [--responses 64] [--seed 0] [--configs 1,default]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPES = {"cot_right": 0.2, "cot_wrong": 0.2, "truncated": 0.2, "degenerate": 0.2, "runaway": 0.2}
STEPS = [
    "Let $x$ be the number we are looking for. Then we have $3x + 7 = 2x - 5$, so $x = -12$. ",
    "Substituting back, $f(2) = 2^2 + 3\\cdot 2 + 1 = 11$, which matches the condition. ",
    "We can factor the quadratic: $x^2 - 5x + 6 = (x-2)(x-3)$, so the roots are $2$ and $3$. ",
    "The sum of the interior angles of a hexagon is $180(6-2) = 720$ degrees. ",
    "By the Pythagorean theorem, $\\sqrt{5^2 + 12^2} = 13$. ",
    "Wait, let me double-check this step. Dividing both sides by $4$ gives $\\frac{20}{4} = 5$. ",
]


def answers() -> list[str]:
    """Reference answers of MATH train (shipped with the package)."""
    path = REPO / "asym_openrlhf" / "data" / "math_train.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)["answer"] for line in handle if line.strip()][:2000]


def chain_of_thought(rng: random.Random, characters: int) -> str:
    text = ""
    while len(text) < characters:
        text += rng.choice(STEPS)
    return text


def response(shape: str, answer: str, rng: random.Random, other: str) -> str:
    if shape in ("cot_right", "cot_wrong"):
        boxed = answer if shape == "cot_right" else other  # another problem's answer
        return chain_of_thought(rng, rng.randint(8_000, 14_000)) + f"So the answer is $\\boxed{{{boxed}}}$."
    if shape == "truncated":
        return chain_of_thought(rng, rng.randint(13_000, 15_000)) + "Therefore $\\frac{3 + \\sqrt{"
    if shape == "degenerate":
        sentence = rng.choice(STEPS)
        return sentence * (rng.randint(12_000, 18_000) // len(sentence))
    terms, text = 1, "$"
    target = rng.randint(12_000, 18_000)
    while len(text) < target:
        text += f"{terms} + "
        terms += 1
    return text + f"{terms}$"


def step_samples(count: int, seed: int) -> list[tuple[str, str, str]]:
    """``(shape, response, label)`` of one engine's share of a step."""
    rng = random.Random(seed)
    labels = answers()
    shapes = rng.choices(list(SHAPES), weights=list(SHAPES.values()), k=count)
    picked = rng.sample(labels, 2 * count)
    return [
        (shape, response(shape, label, rng, other), label)
        for shape, label, other in zip(shapes, picked[:count], picked[count:])
    ]


def child(workers: str, count: int, seed: int, warmup: int) -> dict:
    """Grade the step in this process with ``workers`` grading workers; return the timings."""
    if workers != "default":
        os.environ["ASYM_GRADING_WORKERS"] = workers
    sys.path[:0] = [str(REPO), str(REPO / "evaluation")]
    from asym_openrlhf.reward.math_reward import reward_func

    prompt = "<|im_start|>user\nSolve the problem.<|im_end|>\n<|im_start|>assistant\n"

    def grade(sample) -> tuple[float, float]:
        _, text, label = sample
        start = time.perf_counter()
        score = reward_func([prompt + text], [prompt], [label])["scores"].item()
        return time.perf_counter() - start, score

    threads = min(32, (os.cpu_count() or 1) + 4)  # asyncio.to_thread's default executor
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(grade, step_samples(warmup, seed + 1)))  # workers started and warm
        samples = step_samples(count, seed)
        start = time.perf_counter()
        results = list(pool.map(grade, samples))
        wall = time.perf_counter() - start
    latencies = sorted(latency for latency, _ in results)
    from asym_eval.pool import default_num_workers

    return {
        "workers": default_num_workers(),
        "threads": threads,
        "responses": count,
        "wall_s": wall,
        "per_s": count / wall,
        "p50_s": latencies[len(latencies) // 2],
        "p99_s": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
        "right": sum(score for _, score in results),
        "shapes": {shape: sum(s == shape for s, _, _ in samples) for shape in SHAPES},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=64, help="responses in the timed step (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=8, help="responses graded first, not timed (default 8)")
    parser.add_argument(
        "--configs", default="1,default", help="worker counts to compare, the first is the baseline"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.responses, args.seed, args.warmup)))
        return 0
    rows = []
    for workers in args.configs.split(","):
        print(
            f"[bench] grading {args.responses} responses with workers={workers} ...",
            file=sys.stderr,
            flush=True,
        )
        done = subprocess.run(
            [sys.executable, __file__, "--child", workers, "--responses", str(args.responses),
             "--seed", str(args.seed), "--warmup", str(args.warmup)],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode:
            sys.exit(f"[bench] workers={workers} failed:\n{done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        f"machine: {os.cpu_count()} CPUs; shapes: {rows[0]['shapes']}; {rows[0]['threads']} calling threads"
    )
    print("| grading workers | responses/s | p50 latency (s) | p99 latency (s) | wall (s) | right |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['workers']} | {row['per_s']:.2f} | {row['p50_s']:.2f} | {row['p99_s']:.2f} | "
            f"{row['wall_s']:.1f} | {row['right']:.0f} |"
        )
    for row in rows[1:]:
        print(
            f"throughput ratio, {row['workers']} workers / {rows[0]['workers']}: {row['per_s'] / rows[0]['per_s']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
