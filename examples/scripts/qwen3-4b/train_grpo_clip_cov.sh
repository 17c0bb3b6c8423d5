#!/usr/bin/env bash
# Qwen3-4B, beyond Table 1: GRPO + Clip-Cov (Cui et al. 2025, arXiv 2505.22617) with verl's defaults (ratio 2e-4, bounds 1 and 5).
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_grpo_clip_cov.sh   Run: bash examples/scripts/qwen3-4b/train_grpo_clip_cov.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator group_norm --cov.mode clip_cov
)
launch grpo_clip_cov "$@"
