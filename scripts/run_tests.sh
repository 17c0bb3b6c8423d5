#!/usr/bin/env bash
# The project's test command (README, and CI's .ci/run): set up .venv/, lint, run every test on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
echo "[test] ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check --quiet . || { echo "[test] ruff format: run '.venv/bin/ruff format .'"; exit 1; }
bash scripts/lint_docker_shell.sh
echo "[test] pytest"
.venv/bin/python -m pytest -q "$@"
