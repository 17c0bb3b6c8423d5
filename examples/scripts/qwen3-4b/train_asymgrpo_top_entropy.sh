#!/usr/bin/env bash
# Qwen3-4B, beyond Table 1: AsymGRPO (0.9, 0.4) trained on the top 20% highest-entropy tokens only (Wang et al. 2025, arXiv 2506.01939).
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_asymgrpo_top_entropy.sh   Run: bash examples/scripts/qwen3-4b/train_asymgrpo_top_entropy.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator asym_grpo --asym.beta_pos 0.9 --asym.beta_neg 0.4 --top_entropy.rho 0.2
)
launch asymgrpo_top_entropy "$@"
