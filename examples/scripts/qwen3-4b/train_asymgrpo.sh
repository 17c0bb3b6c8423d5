#!/usr/bin/env bash
# Qwen3-4B, Table 1: AsymGRPO, the paper's main setting: beta+ 0.9, beta- 0.4.
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_asymgrpo.sh   Run: bash examples/scripts/qwen3-4b/train_asymgrpo.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator asym_grpo --asym.beta_pos 0.9 --asym.beta_neg 0.4
)
launch asymgrpo "$@"
