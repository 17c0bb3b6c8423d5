#!/usr/bin/env bash
# Qwen3-4B (non-thinking mode; prepare-data's prompts switch thinking off), SPEC §5: 128 prompts x 8 rollouts
# per rollout step, optimizer mini-batches of 64 prompts (OpenRLHF counts samples: 512), so each rollout
# step makes 2 optimizer steps; responses up to 4,096 tokens.
# shellcheck source=../common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-4B}
DATA_DIR=${DATA_DIR:-$ROOT/data/qwen3-4b}
SAVE_DIR=${SAVE_DIR:-$ROOT/runs/qwen3-4b}
MODEL_ARGS=(
  --rollout.batch_size 128 --train.batch_size 512
  --rollout.max_new_tokens 4096 --data.max_len 5120
  --rollout.micro_batch_size 8 --train.micro_batch_size 2
)
