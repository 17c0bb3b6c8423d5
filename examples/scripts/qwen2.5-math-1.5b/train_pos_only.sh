#!/usr/bin/env bash
# Qwen2.5-Math-1.5B, Section 3: Pos-only: AsymGRPO (0.5, 0).
# Check: DRY_RUN=1 bash examples/scripts/qwen2.5-math-1.5b/train_pos_only.sh   Run: bash examples/scripts/qwen2.5-math-1.5b/train_pos_only.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator pos_only
)
launch pos_only "$@"
