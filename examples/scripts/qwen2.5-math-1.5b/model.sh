#!/usr/bin/env bash
# Qwen2.5-Math-1.5B (base model), SPEC §5: 512 prompts x 8 rollouts per rollout step, optimizer mini-batches
# of 128 prompts (OpenRLHF counts samples: 1,024), so 4 optimizer steps per rollout step; responses up to
# 2,560 tokens (its context is 4,096).
# shellcheck source=../common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-Math-1.5B}
DATA_DIR=${DATA_DIR:-$ROOT/data/qwen2.5-math-1.5b}
SAVE_DIR=${SAVE_DIR:-$ROOT/runs/qwen2.5-math-1.5b}
MODEL_ARGS=(
  --rollout.batch_size 512 --train.batch_size 1024
  --rollout.max_new_tokens 2560 --data.max_len 3584
  --rollout.micro_batch_size 16 --train.micro_batch_size 4
  # Section 3 plots the log-prob gain of correct rollouts after each update (Fig. 2 d,h). Its cost: one extra
  # no-grad forward of the policy over the step's 4,096 rollouts, the same work as the old-log-prob forward
  # upstream already does, about a third of a training pass. Estimated from the code, not timed on GPUs.
  --asym.log_pos_logprob_gain
)
