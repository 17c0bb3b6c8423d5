#!/usr/bin/env bash
# Qwen3-4B, Table 1: REINFORCE, +1/-1 (Eq. 5): AsymGRPO at beta+ = beta- = 0. Not OpenRLHF's `reinforce`, which whitens the raw reward.
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_reinforce.sh   Run: bash examples/scripts/qwen3-4b/train_reinforce.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator asym_grpo --asym.beta_pos 0 --asym.beta_neg 0
)
launch reinforce "$@"
