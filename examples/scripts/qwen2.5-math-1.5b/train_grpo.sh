#!/usr/bin/env bash
# Qwen2.5-Math-1.5B, Section 3: GRPO (Eq. 4): OpenRLHF's group_norm, (r - mean) / (std + eps).
# Check: DRY_RUN=1 bash examples/scripts/qwen2.5-math-1.5b/train_grpo.sh   Run: bash examples/scripts/qwen2.5-math-1.5b/train_grpo.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator group_norm
)
launch grpo "$@"
