#!/usr/bin/env bash
# Qwen3-4B, beyond Table 1: GRPO + KL-Cov (Cui et al. 2025) with verl's defaults (ratio 2e-4, coefficient 1; no ratio clip, as verl).
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_grpo_kl_cov.sh   Run: bash examples/scripts/qwen3-4b/train_grpo_kl_cov.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator group_norm --cov.mode kl_cov
)
launch grpo_kl_cov "$@"
