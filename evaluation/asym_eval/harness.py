"""``asym-eval run``: generate k samples per problem, grade them, score Avg@k and pass@k; resumable.

Files under OUT/:
  config.json   what the samples were made with, and the grader version that graded them; a rerun with
                different settings, or with another grader version, is refused (``regrade`` updates the grades)
  samples.jsonl one line per sample (benchmark, problem_id, problem_index, sample_index, response,
                extracted, correct, reason); appended chunk by chunk (``--chunk_size`` prompts generated,
                graded, then written in one fsync'd append), so a kill loses at most the chunk in flight
  summary.json  scores per benchmark (Avg@k, pass@k, pass@1, in %) and the mean Avg@k
  table.md      the Table 1 row, also printed
Resume: a line cut short by a kill, or a prompt with fewer than its k samples, is dropped on load and that
prompt is generated again; everything complete is kept.
Regrade: ``asym-eval regrade OUT`` grades the saved responses again with this grader and rewrites samples.jsonl,
summary.json and table.md, without generating.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing.resource_tracker
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from asym_eval.backends import make_backend
from asym_eval.benchmarks import Benchmark, load_benchmark, parse_benchmark_spec
from asym_eval.files import check_model_dir, check_output_dir, write_atomic
from asym_eval.generation import (
    PROMPT_FORMATS,
    SEEDING,
    BackendOptions,
    GenerationError,
    Sampling,
    build_prompt,
    encode_prompt,
    engine_log,
    prompt_seed,
)
from asym_eval.grading import DEFAULT_TIMEOUT_S, GRADER_VERSION, GradeRequest
from asym_eval.options import in_range, option, optional
from asym_eval.scoring import PAPER_BENCHMARKS, benchmark_scores, markdown_table, pass_curve_table

LONG_PROMPTS = ("refuse", "truncate", "skip")  # what to do with a prompt the model's context cannot hold
# Prompts per chunk for a backend that names no default of its own.
DEFAULT_CHUNK_SIZE = 64


@dataclass(frozen=True, kw_only=True)
class RunConfig(BackendOptions):
    """One evaluation run: what to generate and grade, and how the backend runs (``BackendOptions``' fields,
    declared there once with their flags)."""

    model: str
    benchmarks: str
    output_dir: str
    n: dict[str, int] = field(default_factory=dict)
    temperature: float = option(
        0.4, "--temperature", "sampling temperature, 0 = greedy (paper: 0.4).", check=in_range(0)
    )
    top_p: float = option(
        1.0, "--top_p", "nucleus sampling top-p in (0, 1] (paper: 1.0).", check=in_range(0, 1, low_open=True)
    )
    max_tokens: int = option(
        4096, "--max_tokens", "most tokens generated per response.", check=in_range(1, integer=True)
    )
    seed: int = option(
        0, "--seed", "base seed; problem i is sampled with its own seed, a hash of (seed, i), so chunks, batches "
        "and engines do not change a prompt's samples.",
    )  # fmt: skip
    limit: int | None = option(
        None, "--limit", "only the first N problems of each benchmark (smoke runs).",
        check=optional(in_range(1, integer=True)), type=int, show_default=False,
    )  # fmt: skip
    backend: str = "hf"
    chunk_size: int | None = option(
        None, "--chunk_size", "prompts generated, graded and saved together; a kill loses at most the chunk in "
        "flight (default: 256 for vllm and openai, 8 for hf, where it is the generate batch).",
        check=optional(in_range(1, integer=True)), type=int, show_default=False,
    )  # fmt: skip
    prompt_format: str = option(
        "chat", "--prompt_format", "chat: chat template + the SPEC §6 instruction (paper); raw: the problem text "
        "is the whole prompt.", choices=PROMPT_FORMATS,
    )  # fmt: skip
    workers: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    run_name: str | None = None
    long_prompts: str = option(
        "refuse", "--long_prompts", "a prompt the model's context cannot hold (with one generated token): refuse "
        "the run, naming the benchmark, how many and the longest; truncate: keep its last tokens; skip: leave it "
        "out of the scores (summary.json counts it).", choices=LONG_PROMPTS,
    )  # fmt: skip
    verbose: bool = option(
        False, "--verbose", "vllm: print the engine's start-up output (default: into OUT/vllm.log, kept for a "
        "failed start).", action="store_true",
    )  # fmt: skip


def parse_n(values: list[str] | None, benchmark_names: list[str]) -> dict[str, int]:
    """``--n 4`` for all, ``--n math500=5`` for one (repeatable); the rest keep the paper's k (SPEC §6),
    or 1 for a custom benchmark."""
    n = {name: PAPER_BENCHMARKS.get(name, (name, 1))[1] for name in benchmark_names}
    for value in values or []:
        name, _, count = value.rpartition("=")
        try:
            k = int(count)
        except ValueError:
            raise ValueError(f"--n: expected K or NAME=K, got '{value}'") from None
        if k < 1:
            raise ValueError(f"--n: k must be >= 1, got '{value}'")
        if not name:
            n = dict.fromkeys(n, k)
        elif name in n:
            n[name] = k
        else:
            raise ValueError(f"--n: '{name}' is not among --benchmarks ({', '.join(benchmark_names)})")
    return n


def _model_fingerprint(model_dir: Path) -> str:
    """Identifies the weights without hashing gigabytes: names, sizes and the config file's bytes."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.iterdir()):
        if path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
            if path.name == "config.json":
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# Settings added after folders were written: an old config.json without them had these values.
LEGACY_SETTINGS = {"long_prompts": "refuse"}


def _check_config(out: Path, settings: dict, benchmark_settings: dict, run_name: str | None) -> dict:
    """The config.json this run will write with its first saved result. Refuses to mix samples made with other
    settings, or graded by another grader version; new benchmarks may be added to a run. A config.json without
    any saved sample (a start that failed) is replaced, not enforced."""
    path = out / "config.json"
    samples = out / "samples.jsonl"
    if path.exists() and samples.exists() and samples.stat().st_size > 0:
        old = json.loads(path.read_text())
        old["settings"] = {**LEGACY_SETTINGS, **old["settings"]}
        graded_by = old["settings"].get("grader_version")
        if graded_by != settings["grader_version"]:
            raise ValueError(
                f"{out}: its samples were graded by grader version {graded_by}, this is version "
                f"{settings['grader_version']}; run `asym-eval regrade {out}` first, or use another --output_dir"
            )
        for key, value in settings.items():
            if old["settings"].get(key) != value:
                raise ValueError(
                    f"{out}: was made with {key}={old['settings'].get(key)!r}, now {value!r}; "
                    "use another --output_dir or the same settings"
                )
        for name, value in benchmark_settings.items():
            if name in old["benchmarks"] and old["benchmarks"][name] != value:
                raise ValueError(
                    f"{out}: benchmark {name} was made with {old['benchmarks'][name]}, now {value}; "
                    "use another --output_dir or the same settings"
                )
        benchmark_settings = {**old["benchmarks"], **benchmark_settings}
    return {"settings": settings, "benchmarks": benchmark_settings, "run_name": run_name}


def load_samples(path: Path, n: dict[str, int]) -> dict[tuple[str, int], list[dict]]:
    """Complete prompts only: (benchmark, problem_index) -> its k sample lines. Rewrites the file without a
    torn last line or incomplete prompts, so appends continue from a clean end."""
    if not path.exists():
        return {}
    by_prompt: dict[tuple[str, int], dict[int, dict]] = {}
    dropped = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
                key = (row["benchmark"], row["problem_index"])
                by_prompt.setdefault(key, {})[row["sample_index"]] = row
            except (json.JSONDecodeError, KeyError, TypeError):
                dropped += 1  # the line a kill cut short
    complete = {
        key: [rows[i] for i in range(n[key[0]])]
        for key, rows in by_prompt.items()
        if key[0] in n and all(i in rows for i in range(n[key[0]]))
    }
    kept = sum(len(rows) for rows in complete.values())
    if dropped or kept != sum(len(rows) for rows in by_prompt.values()):
        text = "".join(json.dumps(row) + "\n" for key in sorted(complete) for row in complete[key])
        write_atomic(path, text)
    return complete


def _append(path: Path, rows: list[dict]) -> None:
    # One write per batch of whole prompts; fsync so a finished batch survives a kill or a power cut.
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in rows))
        handle.flush()
        os.fsync(handle.fileno())


def run_evaluation(config: RunConfig, pool=None, backend=None) -> dict:
    """Generate what is missing, grade it, write samples/summary/table; returns the summary."""
    from asym_eval.pool import GradingPool

    out = check_output_dir(config.output_dir, "--output_dir")
    model_dir = check_model_dir(config.model, "--model", need_weights=config.backend != "openai")
    if config.long_prompts not in LONG_PROMPTS:
        raise ValueError(f"--long_prompts: one of {', '.join(LONG_PROMPTS)}, got {config.long_prompts!r}")
    entries = parse_benchmark_spec(config.benchmarks)
    benchmarks = [load_benchmark(name, path, config.limit) for name, path in entries]
    n = parse_n(None, [b.name for b in benchmarks]) | config.n
    sampling = Sampling(config.temperature, config.top_p, config.max_tokens)
    settings = {
        "model": str(model_dir.resolve()),
        "model_fingerprint": _model_fingerprint(model_dir),
        "backend": config.backend,
        "prompt_format": config.prompt_format,
        "dtype": config.dtype,
        "seed": config.seed,
        "seeding": SEEDING,
        **asdict(sampling),
        "grader_version": GRADER_VERSION,
        "long_prompts": config.long_prompts,
    }
    if config.backend == "openai":  # the local folder gives the tokenizer; the weights are the server's
        settings["served_model"] = config.served_model
    benchmark_settings = {
        b.name: {"sha256": b.sha256, "n": n[b.name], "limit": config.limit} for b in benchmarks
    }
    run_config = _check_config(out, settings, benchmark_settings, config.run_name)
    out.mkdir(parents=True, exist_ok=True)
    samples_path = out / "samples.jsonl"
    done = load_samples(samples_path, n)

    def save(rows: list[dict]) -> None:
        # config.json comes with the first saved result, so a start that fails leaves the folder open.
        if not save.config_written:
            write_atomic(out / "config.json", json.dumps(run_config, indent=2) + "\n")
            save.config_written = True
        _append(samples_path, rows)

    save.config_written = False
    missing = {b.name: [i for i in range(len(b.problems)) if (b.name, i) not in done] for b in benchmarks}
    skipped: dict[str, list[int]] = {}
    own_pool, own_backend = pool is None, backend is None
    try:
        if any(missing.values()):
            log = None if config.verbose or config.backend != "vllm" else str(out / "vllm.log")
            if log is not None and backend is None:
                # multiprocessing's resource tracker outlives us and reports the semaphores a vLLM engine
                # leaks (at exit, after our last line): started here, its reports go to the log too.
                with engine_log(log):
                    multiprocessing.resource_tracker.ensure_running()
            pool = pool or GradingPool(config.workers, config.timeout_s)  # starts while the model loads
            if backend is None:
                options = replace(backend_options(config), log_path=log)
                backend = make_backend(config.backend, str(model_dir), options)
            # Every prompt is built and checked against the model's context before any is generated.
            prompts = {b.name: fit_prompts(b, missing[b.name], backend, config, skipped) for b in benchmarks}
        for benchmark in benchmarks:
            if not missing[benchmark.name]:
                continue
            total = len(benchmark.problems) - len(skipped.get(benchmark.name, []))
            have = len(benchmark.problems) - len(missing[benchmark.name])
            if have:
                print(f"{benchmark.name}: resuming: {have} of {total} prompts done")
            for key, rows in _generate_and_grade(
                benchmark, prompts[benchmark.name], n[benchmark.name], sampling, config, backend, pool, save,
                (have * n[benchmark.name], total * n[benchmark.name]),
            ):  # fmt: skip
                done[key] = rows
    finally:
        if own_backend and hasattr(backend, "close"):
            backend.close()
        if own_pool and pool is not None:
            pool.close()
    if not save.config_written:  # nothing new was generated (a finished run): record this run's name etc.
        if (out / "config.json").exists() or done:
            write_atomic(out / "config.json", json.dumps(run_config, indent=2) + "\n")
    return _summarize(benchmarks, n, done, config.model, config.run_name, out, skipped)


def fit_prompts(benchmark: Benchmark, indices: list[int], backend, config: RunConfig, skipped) -> dict:
    """``{problem_index: prompt token ids}`` for the prompts to generate. A prompt must leave the model's
    context room for one token; longer ones are refused (one line naming the benchmark, how many, the
    longest and the limit), or with ``--long_prompts truncate`` cut to their last tokens (the end holds the
    question and the chat template's assistant turn), or with ``skip`` left out of the scores (and counted)."""
    tokenizer = backend.tokenizer
    prompts = {
        i: encode_prompt(
            tokenizer,
            build_prompt(tokenizer, benchmark.problems[i].problem, config.prompt_format),
            config.prompt_format,
        )
        for i in indices
    }
    limit = getattr(backend, "max_context", None)
    if limit is None:  # a served model: the server checks
        return prompts
    too_long = [i for i, ids in prompts.items() if len(ids) >= limit]
    if not too_long:
        return prompts
    longest = max(len(prompts[i]) for i in too_long)
    if config.long_prompts == "refuse":
        raise ValueError(
            f"--benchmarks: {benchmark.name}: {len(too_long)} of {len(benchmark.problems)} prompts do not fit "
            f"the model's context (longest {longest} tokens, limit {limit} including one generated token); "
            "pass --long_prompts truncate or --long_prompts skip"
        )
    if config.long_prompts == "truncate":
        print(
            f"{benchmark.name}: {len(too_long)} prompts cut to their last {limit - 1} tokens (longest {longest})"
        )
        return {i: ids[-(limit - 1) :] if i in too_long else ids for i, ids in prompts.items()}
    skipped[benchmark.name] = too_long
    print(
        f"{benchmark.name}: {len(too_long)} prompts longer than the context ({limit}) skipped and not scored"
    )
    return {i: ids for i, ids in prompts.items() if i not in too_long}


def backend_options(config: RunConfig) -> BackendOptions:
    """The backend's part of the run's configuration."""
    return BackendOptions(**{f.name: getattr(config, f.name) for f in fields(BackendOptions)})


def regrade(out: Path, benchmarks: str | None = None, pool=None) -> dict:
    """Grade the saved responses of a run folder again with this grader; rewrites samples.jsonl (correct,
    extracted, reason), summary.json, table.md and config.json's grader version. ``benchmarks``: the run's
    ``--benchmarks``, needed for files of your own (``name=path.jsonl``); default: the names in config.json."""
    from asym_eval.pool import GradingPool

    path = out / "config.json"
    if not path.is_file():
        raise ValueError(f"{out}: no config.json, not a folder written by asym-eval run")
    config = json.loads(path.read_text())
    recorded = config["benchmarks"]
    entries = parse_benchmark_spec(benchmarks or ",".join(recorded))
    if sorted(name for name, _ in entries) != sorted(recorded):
        raise ValueError(f"--benchmarks: must name this run's benchmarks ({', '.join(recorded)}), no others")
    loaded = []
    for name, bench_path in entries:
        benchmark = load_benchmark(name, bench_path, recorded[name]["limit"])
        if benchmark.sha256 != recorded[name]["sha256"]:
            raise ValueError(f"--benchmarks: {name}: {bench_path} is not the file the samples were made from")
        loaded.append(benchmark)
    n = {name: recorded[name]["n"] for name in recorded}
    samples_path = out / "samples.jsonl"
    done = load_samples(samples_path, n)
    for benchmark in loaded:
        have = sum((benchmark.name, i) in done for i in range(len(benchmark.problems)))
        if have < len(benchmark.problems):
            raise ValueError(
                f"{out}: {benchmark.name} has {have} of {len(benchmark.problems)} prompts; "
                "finish the run (asym-eval run) before regrading"
            )
    problems = {b.name: b.problems for b in loaded}
    keys = sorted(done)
    rows = [row for key in keys for row in done[key]]
    requests = []
    for row in rows:
        problem = problems[row["benchmark"]][row["problem_index"]]
        requests.append(
            GradeRequest(row["response"], problem.answer, problem.multiple_answers, problem.tolerance)
        )
    own_pool = pool is None
    pool = pool or GradingPool()
    try:
        results = pool.grade(requests, progress=len(requests) > 200, desc="regrading")
    finally:
        if own_pool:
            pool.close()
    changed = sum(row["correct"] != result.correct for row, result in zip(rows, results))
    for row, result in zip(rows, results):
        row.update(extracted=result.extracted, correct=result.correct, reason=result.reason)
    write_atomic(samples_path, "".join(json.dumps(row) + "\n" for row in rows))
    config["settings"]["grader_version"] = GRADER_VERSION
    write_atomic(path, json.dumps(config, indent=2) + "\n")
    print(f"regraded {len(rows)} samples with grader version {GRADER_VERSION}: {changed} verdicts changed")
    return _summarize(loaded, n, done, config["settings"]["model"], config.get("run_name"), out)


def _generate_and_grade(benchmark: Benchmark, prompts, k, sampling, config, backend, pool, save, progress_at):
    """Chunk by chunk: generate ``chunk_size`` prompts, grade them, save them; yields each saved prompt.
    ``prompts``: {problem_index: token ids}; ``progress_at``: (samples done, samples in all) for the bar."""
    from tqdm import tqdm

    # A backend needs only ``tokenizer`` and ``generate``; ``default_chunk_size`` and ``close`` are optional.
    chunk_size = config.chunk_size or getattr(backend, "default_chunk_size", DEFAULT_CHUNK_SIZE)
    missing = list(prompts)
    chunks = [missing[i : i + chunk_size] for i in range(0, len(missing), chunk_size)]
    initial, total = progress_at
    progress = tqdm(total=total, initial=initial, desc=benchmark.name, unit="sample", dynamic_ncols=True)
    start = time.perf_counter()
    with progress:
        for number, chunk in enumerate(chunks, start=1):
            yield from _generate_and_grade_chunk(
                benchmark, chunk, [prompts[i] for i in chunk], (number, len(chunks)), k, sampling, config,
                backend, pool, save,
            )  # fmt: skip
            progress.update(len(chunk) * k)
            progress.set_postfix_str(f"{number}/{len(chunks)} chunks of {chunk_size} prompts saved")
    seconds = time.perf_counter() - start
    print(
        f"{benchmark.name}: {len(missing)} prompts x {k} samples in {len(chunks)} chunks, {seconds:.1f} s, "
        f"{len(missing) * k / seconds:.2f} samples/s (generated and graded)"
    )


def _generate_and_grade_chunk(
    benchmark, chunk, prompt_ids, position, k, sampling, config, backend, pool, save
):
    try:
        texts = backend.generate(prompt_ids, k, sampling, [prompt_seed(config.seed, i) for i in chunk])
    except GenerationError as err:
        problem = benchmark.problems[chunk[err.position]]
        number, total = position
        raise GenerationError(
            err.position,
            f"--backend {config.backend}: {benchmark.name} problem {problem.problem_id}: {err} "
            f"({number - 1} of {total} chunks saved; rerun the same command to resume)",
        ) from None
    yield from _grade_and_save(benchmark, list(zip(chunk, texts)), pool, save)


def _grade_and_save(benchmark: Benchmark, batch, pool, save):
    requests = []
    for index, texts in batch:
        problem = benchmark.problems[index]
        requests += [
            GradeRequest(text, problem.answer, problem.multiple_answers, problem.tolerance) for text in texts
        ]
    results = iter(pool.grade(requests, progress=len(requests) > 200, desc=f"{benchmark.name}: grading"))
    rows_by_prompt = []
    for index, texts in batch:
        rows = []
        for sample_index, text in enumerate(texts):
            result = next(results)
            rows.append(
                {
                    "benchmark": benchmark.name,
                    "problem_id": benchmark.problems[index].problem_id,
                    "problem_index": index,
                    "sample_index": sample_index,
                    "response": text,
                    "extracted": result.extracted,
                    "correct": result.correct,
                    "reason": result.reason,
                }
            )
        rows_by_prompt.append(((benchmark.name, index), rows))
    save([row for _, rows in rows_by_prompt for row in rows])
    yield from rows_by_prompt


def _summarize(benchmarks, n, done, model: str, run_name: str | None, out: Path, skipped=None) -> dict:
    skipped = skipped or {}
    scores = {}
    for benchmark in benchmarks:
        left_out = set(skipped.get(benchmark.name, []))
        correct = [
            [int(row["correct"]) for row in done[(benchmark.name, i)]]
            for i in range(len(benchmark.problems))
            if i not in left_out
        ]
        scores[benchmark.name] = benchmark_scores(correct, n[benchmark.name])
        if left_out:  # --long_prompts skip: the score is over the prompts that fit
            scores[benchmark.name]["skipped_long_prompts"] = len(left_out)
    name = run_name or Path(model).name
    # The pass@k curve (every power of 2 up to the samples): exploration shows at large k, not in Avg@k.
    table = markdown_table({name: scores}) + "\n\nUnbiased pass@k (%):\n\n" + pass_curve_table(scores)
    summary = {
        "model": str(Path(model).resolve()),
        "benchmarks": scores,
        "mean_avg_at_k": sum(s["avg_at_k"] for s in scores.values()) / len(scores),
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_atomic(out / "table.md", table + "\n")
    print(table)
    return summary
