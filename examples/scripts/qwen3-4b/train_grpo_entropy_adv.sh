#!/usr/bin/env bash
# Qwen3-4B, Table 1: GRPO + Entropy Advantage (Cheng et al. 2025): A + min(0.4 * H_t, |A| / 2) per token.
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_grpo_entropy_adv.sh   Run: bash examples/scripts/qwen3-4b/train_grpo_entropy_adv.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator group_norm
  --entropy_adv.alpha 0.4 --entropy_adv.kappa 2
)
launch grpo_entropy_adv "$@"
