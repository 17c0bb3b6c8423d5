#!/usr/bin/env bash
# Qwen3-4B, Table 1: EntDecrease: GRPO's curves (0.5, 0.5) with the positive one flipped (Appendix D).
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_ent_decrease.sh   Run: bash examples/scripts/qwen3-4b/train_ent_decrease.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator ent_decrease
)
launch ent_decrease "$@"
