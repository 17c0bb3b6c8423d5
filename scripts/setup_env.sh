#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment at .venv/ and installs everything pinned.
#
# Why it is not a plain `pip install -e .`:
#   * torch must be the CPU build 2.13.0 and installed first, or a multi-GB CUDA build gets pulled;
#   * openrlhf==0.11.2 requires flash-attn==2.8.3, which cannot build without CUDA: on a CPU machine we
#     install OpenRLHF's other requirements and then OpenRLHF itself with --no-deps (design/openrlhf.md).
# Re-running it is cheap: every step is skipped when its stamp matches.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PY=${PYTHON:-python3}

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
echo "[setup] OpenRLHF 0.11.2 requirements (without flash-attn, which needs CUDA)"
DS_BUILD_OPS=0 pip_install -c requirements/cpu-constraints.txt -r requirements/openrlhf-cpu.txt
pip_install --no-deps openrlhf==0.11.2
echo "[setup] asym_openrlhf (editable) and the test tools"
pip_install -c requirements/cpu-constraints.txt -e ".[dev]"
echo "$want" > "$stamp"
echo "[setup] done"
