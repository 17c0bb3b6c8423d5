#!/usr/bin/env bash
# Qwen3-4B, Table 1: AsymGRPO with beta+ = beta- = 0.7.
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_asymgrpo_symmetric.sh   Run: bash examples/scripts/qwen3-4b/train_asymgrpo_symmetric.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator asym_grpo --asym.beta_pos 0.7 --asym.beta_neg 0.7
)
launch asymgrpo_symmetric "$@"
