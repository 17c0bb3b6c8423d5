#!/usr/bin/env bash
# Qwen3-4B, beyond Table 1: W-REINFORCE (Zhu et al. 2025, arXiv 2506.01347): REINFORCE's +1/-1 with the positive channel weighted lambda = 0.1.
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_w_reinforce.sh   Run: bash examples/scripts/qwen3-4b/train_w_reinforce.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator w_reinforce
)
launch w_reinforce "$@"
