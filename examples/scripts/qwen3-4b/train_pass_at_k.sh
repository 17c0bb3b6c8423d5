#!/usr/bin/env bash
# Qwen3-4B, Table 1: Pass@K training (Chen et al. 2025), K = 5.
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_pass_at_k.sh   Run: bash examples/scripts/qwen3-4b/train_pass_at_k.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator pass_at_k --pass_k.k 5
)
launch pass_at_k "$@"
