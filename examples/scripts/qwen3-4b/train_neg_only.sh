#!/usr/bin/env bash
# Qwen3-4B, Table 1: Neg-only: AsymGRPO (0, 0.5).
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_neg_only.sh   Run: bash examples/scripts/qwen3-4b/train_neg_only.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator neg_only
)
launch neg_only "$@"
