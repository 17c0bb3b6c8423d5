#!/usr/bin/env bash
# Qwen2.5-Math-1.5B, Section 3: EntDecrease: GRPO's curves (0.5, 0.5) with the positive one flipped (Appendix D).
# Check: DRY_RUN=1 bash examples/scripts/qwen2.5-math-1.5b/train_ent_decrease.sh   Run: bash examples/scripts/qwen2.5-math-1.5b/train_ent_decrease.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator ent_decrease
)
launch ent_decrease "$@"
