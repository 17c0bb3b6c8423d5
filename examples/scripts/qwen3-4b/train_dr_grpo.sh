#!/usr/bin/env bash
# Qwen3-4B, Table 1: Dr.GRPO (Liu et al. 2025): r - mean, and each sequence's loss sum / max_new_tokens.
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_dr_grpo.sh   Run: bash examples/scripts/qwen3-4b/train_dr_grpo.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator dr_grpo
)
launch dr_grpo "$@"
