#!/usr/bin/env bash
# Qwen3-4B, Table 1: GRPO + clip-higher (DAPO): eps_low 0.2, eps_high 0.28.
# Check: DRY_RUN=1 bash examples/scripts/qwen3-4b/train_grpo_clip_higher.sh   Run: bash examples/scripts/qwen3-4b/train_grpo_clip_higher.sh [flags]
# shellcheck source=model.sh
source "$(dirname "${BASH_SOURCE[0]}")/model.sh"
ALGO_ARGS=(
  --advantage_estimator group_norm
  --actor.eps_clip_low_high 0.2 0.28
)
launch grpo_clip_higher "$@"
