#!/usr/bin/env bash
# Qwen3-4B, Table 1: GRPO + entropy regularization, loss - 0.001 * entropy.
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_grpo_entropy_reg.sh   Run: bash examples/scripts/qwen3-4b/train_grpo_entropy_reg.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator group_norm
  --actor.entropy_coef 0.001
)
launch grpo_entropy_reg "$@"
