"""``--backend openai`` against a real OpenAI-compatible server: vLLM's own ``api_server`` (the CPU build) of the
tiny model on 127.0.0.1, started here once for the module and killed at its end. Greedy responses equal the
hf backend's (and so the vllm backend's, tests/test_eval_vllm.py); a response cut halfway is retried; a run
killed mid-way resumes with only the missing prompts and gives the uninterrupted run's samples; the API key
is sent; permanent failures stop the run with a one-line error; bad flags are refused.

Between client and server sits a small TCP proxy of this test: it can cut a response halfway (the client sees
the connection drop) and delay responses (so a run is slow enough to be killed in the middle).
"""

import socket
import subprocess
import sys
import threading
import time

import pytest
from asym_eval.cli import main
from asym_eval.served import local_vllm_server
from asym_eval.tiny_model import build_tiny_model
from shared import read_rows  # noqa: E402  (tests/ is on sys.path: conftest.py)

pytestmark = pytest.mark.slow  # starts a vLLM server

API_KEY_ENV = "ASYM_EVAL_TEST_KEY"
API_KEY = "test-key-1234"
BENCH = ["--benchmarks", "amc23", "--limit", "5", "--prompt_format", "chat", "--workers", "1"]
GREEDY = ["--n", "2", "--temperature", "0", "--max_tokens", "24", "--dtype", "float32"]
SAMPLED = ["--n", "3", "--temperature", "1.0", "--max_tokens", "16", "--seed", "7", "--dtype", "float32"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("served") / "tiny"))


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """The served tiny model's API root URL; the server is killed at the module's end, also on failure."""
    log = tmp_path_factory.mktemp("server_log") / "server.log"
    with local_vllm_server(model, "tiny", log, api_key=API_KEY) as url:
        yield url


class Proxy:
    """Forwards 127.0.0.1:port to the server. ``cut``: how many more responses to cut after half their first
    bytes; ``delay_s``: wait before forwarding each response."""

    def __init__(self, upstream_port: int):
        self.upstream_port, self.cut, self.delay_s, self.cuts_done = upstream_port, 0, 0.0, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source, target, is_response):
        try:
            while data := source.recv(65536):
                if is_response:
                    time.sleep(self.delay_s)
                    if self.cut > 0:
                        self.cut -= 1
                        self.cuts_done += 1
                        target.sendall(data[: len(data) // 2])
                        break
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self):
        self.listener.close()


@pytest.fixture
def proxy(server):
    proxy = Proxy(int(server.rsplit(":", 1)[1].split("/")[0]))
    yield proxy
    proxy.close()


def served(model, url, out, *flags):
    argv = ["run", "--model", model, "--output_dir", str(out), "--backend", "openai", "--base_url", url]
    return argv + ["--served_model", "tiny", "--api_key_env", API_KEY_ENV, *BENCH, *flags]


def responses(folder):
    rows = read_rows(folder / "samples.jsonl")
    return [(row["problem_id"], row["sample_index"], row["response"]) for row in rows]


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, API_KEY)


def test_greedy_served_equals_hf_and_a_cut_response_is_retried(model, server, proxy, tmp_path):
    assert (
        main(
            [
                "run",
                "--model",
                model,
                "--output_dir",
                str(tmp_path / "hf"),
                "--backend",
                "hf",
                *BENCH,
                *GREEDY,
            ]
        )
        == 0
    )
    proxy.cut = 1
    url = f"http://127.0.0.1:{proxy.port}/v1"
    assert main(served(model, url, tmp_path / "served", *GREEDY, "--concurrency", "2")) == 0
    assert proxy.cuts_done == 1  # the first response was cut halfway, and the run still completed
    hf = responses(tmp_path / "hf")
    assert len({text for _, _, text in hf}) == 5 and responses(tmp_path / "served") == hf


def test_a_killed_run_resumes_with_the_same_samples(model, server, proxy, tmp_path, capsys):
    assert main(served(model, server, tmp_path / "whole", *SAMPLED)) == 0
    whole = responses(tmp_path / "whole")
    assert len(whole) == 15 and len({text for _, _, text in whole}) > 10  # sampled

    proxy.delay_s = 1.0  # a prompt a second, so the kill lands mid-run
    out = tmp_path / "killed"
    argv = served(model, f"http://127.0.0.1:{proxy.port}/v1", out, *SAMPLED, "--chunk_size", "1")
    process = subprocess.Popen([sys.executable, "-m", "asym_eval.cli", *argv], stderr=subprocess.DEVNULL)
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 120
    while not (samples.exists() and samples.read_text().count("\n") >= 6):  # two prompts saved
        assert process.poll() is None and time.monotonic() < deadline, (
            "the run ended before it could be killed"
        )
        time.sleep(0.05)
    process.kill()
    process.wait()
    saved = samples.read_text().count("\n") // 3
    assert 2 <= saved < 5
    proxy.delay_s = 0.0
    capsys.readouterr()
    assert main(argv) == 0
    assert f"amc23: {5 - saved} prompts x 3 samples in {5 - saved} chunks" in capsys.readouterr().out
    assert responses(out) == whole


def test_permanent_failures_stop_the_run_with_one_line(model, server, tmp_path, capsys, monkeypatch):
    wrong_model = served(model, server, tmp_path / "a", *GREEDY)
    wrong_model[wrong_model.index("tiny")] = "no-such-model"
    assert main(wrong_model) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # above it: the progress bar
    assert err.startswith("asym-eval run: error: --backend openai: amc23 problem") and "HTTP 404" in err
    assert "(0 of 1 chunks saved; rerun the same command to resume)" in err
    monkeypatch.setenv(API_KEY_ENV, "wrong-key")
    assert main(served(model, server, tmp_path / "b", *GREEDY)) == 2
    assert "HTTP 401" in capsys.readouterr().err


def test_bad_flags_are_refused_naming_the_flag(model, tmp_path, capsys, monkeypatch):
    base = ["run", "--model", model, "--output_dir", str(tmp_path), *BENCH]
    url = ["--base_url", "http://127.0.0.1:1/v1"]
    cases = [
        (base + ["--backend", "hf", *url], "--base_url: only with --backend openai"),
        (
            base + ["--backend", "hf", "--data_parallel_size", "2"],
            "--data_parallel_size: only with --backend vllm",
        ),
        (
            base + ["--backend", "vllm", "--data_parallel_size", "0"],
            "--data_parallel_size: must be an integer >= 1, got 0",
        ),
        (base + ["--backend", "hf", "--chunk_size", "0"], "--chunk_size: must be an integer >= 1, got 0"),
        (
            base + ["--backend", "openai", "--served_model", "tiny"],
            "--base_url: required with --backend openai",
        ),
        (base + ["--backend", "openai", *url], "--served_model: required with --backend openai"),
        (
            base + ["--backend", "openai", "--served_model", "t", "--base_url", "127.0.0.1:8000"],
            "--base_url: expected",
        ),
        (
            base + ["--backend", "openai", "--served_model", "t", *url, "--concurrency", "0"],
            "--concurrency: must be",
        ),
        (
            base + ["--backend", "openai", "--served_model", "t", *url, "--api_key_env", "ASYM_NO_SUCH_VAR"],
            "--api_key_env: environment variable ASYM_NO_SUCH_VAR is not set",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)
