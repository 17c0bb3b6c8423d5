#!/usr/bin/env bash
# Qwen2.5-Math-1.5B, Section 3: beta grid (Section 3): AsymGRPO beta+ = 0, beta- = 0.25.
# Check: DRY_RUN=1 bash examples/scripts/qwen2.5-math-1.5b/train_beta_p0_n0.25.sh   Run: bash examples/scripts/qwen2.5-math-1.5b/train_beta_p0_n0.25.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator asym_grpo --asym.beta_pos 0 --asym.beta_neg 0.25
)
launch beta_p0_n0.25 "$@"
