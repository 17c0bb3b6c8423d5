#!/usr/bin/env bash
# The project's test command (README, and CI's .ci/run): set up .venv/, lint, run every test on the CPU.
#   bash scripts/run_tests.sh           everything (CI)
#   bash scripts/run_tests.sh --fast    lint and the tests not marked slow (no vLLM, Ray, servers or training
#                                       runs): what a maintainer runs every few minutes
# Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
markers=()
if [[ ${1:-} == --fast ]]; then
  shift
  markers=(-m "not slow")
fi
bash scripts/setup_env.sh
echo "[test] ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check --quiet . || { echo "[test] ruff format: run '.venv/bin/ruff format .'"; exit 1; }
bash scripts/lint_docker_shell.sh
echo "[test] pytest ${markers[*]}"
.venv/bin/python -m pytest -q "${markers[@]}" "$@"
