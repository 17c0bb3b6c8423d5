"""``--data_parallel_size N``: N vLLM engines, each in its own process on its own GPUs.

Each engine is ``python -m asym_eval.engines`` (a fresh interpreter with a ``__main__`` guard, as vLLM
wants), started with ``CUDA_VISIBLE_DEVICES`` set to its ``--tensor_parallel_size`` GPUs (on a CPU machine,
``VLLM_CPU_OMP_THREADS_BIND`` to its share of the cores), running the one-engine ``VLLMBackend``. The parent
talks to it over the child's stdin/stdout with pickled messages (the child's own prints go to stderr).

Split: prompt j of a chunk goes to engine j % N (deterministic; interleaving evens out long and short
problems), and the chunk's results are put back in prompt order. Each request carries its prompt's seed, so
sampled results do not depend on N, and greedy results equal a one-engine run.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import asdict

from asym_eval.generation import (
    BackendOptions,
    Sampling,
    cpu_engine_settings,
    cpu_only,
    engine_start_error,
    load_tokenizer,
)


def _visible_gpus() -> list[str]:
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu for gpu in listed.split(",") if gpu.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


def engine_environments(data_parallel_size: int, tensor_parallel_size: int) -> list[dict[str, str]]:
    """Per engine, the variables that give it its own devices: GPUs where there are any, else CPU cores."""
    gpus = _visible_gpus()
    if gpus:
        needed = data_parallel_size * tensor_parallel_size
        if len(gpus) < needed:
            raise ValueError(
                f"--data_parallel_size: {data_parallel_size} engines x {tensor_parallel_size} GPUs need "
                f"{needed} GPUs, {len(gpus)} visible"
            )
        return [
            {
                "CUDA_VISIBLE_DEVICES": ",".join(
                    gpus[r * tensor_parallel_size : (r + 1) * tensor_parallel_size]
                )
            }
            for r in range(data_parallel_size)
        ]
    if "VLLM_CPU_OMP_THREADS_BIND" in os.environ:  # the user's own binding wins
        return [{} for _ in range(data_parallel_size)]
    cores = sorted(os.sched_getaffinity(0))
    share = len(cores) // data_parallel_size
    if share < tensor_parallel_size:  # fewer cores than engines: let vLLM place them
        return [{"VLLM_CPU_OMP_THREADS_BIND": "nobind"} for _ in range(data_parallel_size)]
    envs = []
    for r in range(data_parallel_size):
        mine = cores[r * share : (r + 1) * share]
        per_rank = len(mine) // tensor_parallel_size
        ranks = [mine[t * per_rank : (t + 1) * per_rank] for t in range(tensor_parallel_size)]
        envs.append({"VLLM_CPU_OMP_THREADS_BIND": "|".join(",".join(map(str, c)) for c in ranks)})
    return envs


class EngineProcess:
    """One engine process and its message channel."""

    def __init__(self, rank: int, model_dir: str, options: BackendOptions, env: dict[str, str]):
        self.rank = rank
        self.log_path = options.log_path
        # The engine's own output (vLLM's start-up lines) goes to the run's vllm.log, or to the terminal.
        log = open(options.log_path, "a", encoding="utf-8") if options.log_path else None  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "asym_eval.engines"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, **env},
            )
        finally:
            if log is not None:
                log.close()  # the child holds its own copy
        self.send(("start", model_dir, asdict(options)))

    def send(self, message) -> None:
        pickle.dump(message, self.process.stdin)
        self.process.stdin.flush()

    def receive(self):
        try:
            kind, payload = pickle.load(self.process.stdout)
        except EOFError:
            code = self.process.wait()
            raise ValueError(
                engine_start_error(
                    self.log_path, RuntimeError(f"vLLM engine {self.rank} exited (code {code})")
                )
            ) from None
        if kind == "error":
            raise ValueError(
                engine_start_error(self.log_path, RuntimeError(f"vLLM engine {self.rank}: {payload}"))
            )
        return payload

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send(None)
                self.process.stdin.close()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


class DataParallelVLLM:
    """``--data_parallel_size`` engines behind the backend interface."""

    name = "vllm"
    default_chunk_size = 256

    def __init__(self, model_dir: str, options: BackendOptions):
        from transformers import AutoConfig

        envs = engine_environments(options.data_parallel_size, options.tensor_parallel_size)
        self.tokenizer = load_tokenizer(model_dir)
        # What vLLM derives max_model_len from (the engines run elsewhere and are not asked).
        self.max_context = getattr(AutoConfig.from_pretrained(model_dir), "max_position_embeddings", None)
        if cpu_only():
            print(cpu_engine_settings(model_dir, options)[1] + f", x{len(envs)} engines", flush=True)
        self.engines: list[EngineProcess] = []
        try:
            for rank, env in enumerate(envs):  # all load at once
                self.engines.append(EngineProcess(rank, model_dir, options, env))
            for engine in self.engines:
                engine.receive()  # "ready"
        except BaseException:
            self.close()
            raise

    def generate(
        self, prompt_ids: list[list[int]], n_samples: int, sampling: Sampling, seeds: list[int]
    ) -> list[list[str]]:
        size = len(self.engines)
        busy = []
        for rank, engine in enumerate(self.engines):
            if prompt_ids[rank::size]:
                engine.send(("generate", prompt_ids[rank::size], n_samples, sampling, seeds[rank::size]))
                busy.append(rank)
        results: list[list[str]] = [[] for _ in prompt_ids]
        for rank in busy:
            results[rank::size] = self.engines[rank].receive()
        return results

    def close(self) -> None:
        for engine in self.engines:
            engine.close()


def _serve() -> None:
    """The engine process: load, then answer generate requests until the parent closes the channel."""
    import traceback

    from asym_eval.generation import VLLMBackend

    channel_in = os.fdopen(os.dup(0), "rb")
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # vLLM's and tqdm's prints go to stderr, not into the message stream

    def reply(kind, payload):
        pickle.dump((kind, payload), channel_out)
        channel_out.flush()

    backend = None
    while True:
        try:
            message = pickle.load(channel_in)
        except EOFError:  # the parent is gone
            return
        if message is None:
            return
        try:
            if message[0] == "start":
                _, model_dir, options = message
                # Its stderr is already the log (or the terminal with --verbose): no second redirection.
                options = {**options, "data_parallel_size": 1, "log_path": None}
                backend = VLLMBackend(model_dir, BackendOptions(**options))
                reply("ready", None)
            else:
                _, prompt_ids, n_samples, sampling, seeds = message
                reply("done", backend.generate(prompt_ids, n_samples, sampling, seeds))
        except Exception:  # noqa: BLE001 - the parent reports it with the engine's rank
            reply("error", traceback.format_exc(limit=3))
            if backend is None:
                return


if __name__ == "__main__":
    _serve()
