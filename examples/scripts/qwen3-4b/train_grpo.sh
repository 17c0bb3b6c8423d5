#!/usr/bin/env bash
# Qwen3-4B, Table 1: GRPO (Eq. 4): OpenRLHF's group_norm, (r - mean) / (std + eps).
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_grpo.sh   Run: bash examples/scripts/qwen3-4b/train_grpo.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator group_norm
)
launch grpo "$@"
