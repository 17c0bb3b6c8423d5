#!/usr/bin/env bash
# Qwen2.5-Math-1.5B, Section 3: EntIncrease: GRPO's curves (0.5, 0.5) with the negative one flipped (Appendix D).
# Check: DRY_RUN=1 bash examples/scripts/qwen2.5-math-1.5b/train_ent_increase.sh   Run: bash examples/scripts/qwen2.5-math-1.5b/train_ent_increase.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator ent_increase
)
launch ent_increase "$@"
