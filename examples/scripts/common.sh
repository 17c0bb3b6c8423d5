#!/usr/bin/env bash
# The block every launch script shares: SPEC §5's settings for AsymGRPO and its baselines on OpenRLHF's Ray
# PPO pipeline, hybrid engine (vLLM and DeepSpeed colocated) on one node of 4 GPUs. A model file
# (<model>/model.sh) adds the model's batch sizes; a row script adds only its ALGO_ARGS and calls `launch`.
#
# Environment (all optional):
#   MODEL_PATH    the model (hub name or local folder)            default: set by model.sh
#   DATA_DIR      output of `asym-rl prepare-data`                default: <repo>/data/<model>
#   SAVE_DIR      checkpoints and tensorboard logs                default: <repo>/runs/<model>
#   REWARD_FILE   reward function for --reward.remote_url         default: asym_openrlhf/reward/math_reward.py
#   RAY_ADDRESS   Ray dashboard to submit to                      default: http://127.0.0.1:8265
#   EPISODES      passes over MATH train (the paper does not say) default: 5
#   WANDB_API_KEY set it to log to wandb as well as tensorboard
#   DRY_RUN=1     no Ray, no GPU: parse and validate every flag with OpenRLHF's real parser, print the
#                 resolved configuration as JSON. Works on a CPU machine after scripts/setup_env.sh.
#   PYTHON        the Python of the dry run                       default: <repo>/.venv/bin/python if it
#                 exists and no virtual environment is active, else python3
#   ASYM_LAUNCHER the dry run's command (tests set it to print the command line instead)
# Extra arguments to a row script are appended last, so they override anything here.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
REWARD_FILE=${REWARD_FILE:-$ROOT/asym_openrlhf/reward/math_reward.py}
EPISODES=${EPISODES:-5}
if [[ -z ${PYTHON:-} ]]; then
  PYTHON=python3
  [[ -z ${VIRTUAL_ENV:-} && -x $ROOT/.venv/bin/python ]] && PYTHON=$ROOT/.venv/bin/python
fi
ASYM_LAUNCHER=${ASYM_LAUNCHER:-$PYTHON -m asym_openrlhf.cli.train_ppo_ray}

common_args() {
  local run_dir=$SAVE_DIR/$1
  COMMON_ARGS=(
    # Hybrid engine: 4 vLLM engines and 4 DeepSpeed ranks share the 4 GPUs and sleep in turn. Memory
    # utilization above ~0.75 hangs or runs out of memory when colocated.
    --actor.num_nodes 1 --actor.num_gpus_per_node 4
    --vllm.num_engines 4 --vllm.tensor_parallel_size 1 --vllm.gpu_memory_utilization 0.6
    --train.colocate_all --vllm.enable_sleep --ds.enable_sleep
    --ds.zero_stage 3 --ds.param_dtype bf16 --actor.gradient_checkpointing_enable --ds.packing_samples
    --actor.model_name_or_path "$MODEL_PATH"

    # Data (`asym-rl prepare-data` writes chat-templated prompts, so no --data.apply_chat_template) and the
    # binary math reward; MATH-500 at temperature 0 every 10 steps picks the checkpoint (SPEC §4, §6).
    --data.prompt_dataset "$DATA_DIR/math_train.jsonl" --data.input_key prompt --data.label_key label
    --eval.dataset "$DATA_DIR/math500.jsonl" --eval.steps 10 --eval.temperature 0 --eval.n_samples_per_prompt 1
    --reward.remote_url "$REWARD_FILE"

    # SPEC §5: G = 8 rollouts at temperature 1, AdamW lr 2e-6 (constant, no warmup, as verl), no KL
    # (no reference model), token-level loss, PPO clip 0.2. No entropy bonus (--actor.entropy_coef unset): the
    # policy actor logs train/actor/entropy every step from a no-grad pass over its logits.
    --rollout.n_samples_per_prompt 8 --rollout.temperature 1.0 --rollout.top_p 1.0
    --actor.adam.lr 2e-6 --actor.lr_scheduler constant --actor.lr_warmup_ratio 0
    --algo.kl.init_coef 0 --actor.loss_agg_mode token-mean
    --actor.eps_clip_low_high 0.2 0.2
    --train.num_episodes "$EPISODES" --train.max_epochs 1

    # Checkpoints (HF format, so the evaluation harness can read them) and logs.
    --ckpt.path "$run_dir/ckpt" --ckpt.output_dir "$run_dir/final" --ckpt.save_steps 20 --ckpt.max_num 2
    --ckpt.save_hf --ckpt.best_metric_key eval_math500_pass1 --ckpt.load_enable
    --logger.tensorboard_dir "$run_dir/tensorboard" --logger.logging_steps 1
  )
  if [[ -n ${WANDB_API_KEY:-} ]]; then
    COMMON_ARGS+=(--logger.wandb.key "$WANDB_API_KEY" --logger.wandb.project asymgrpo
      --logger.wandb.run_name "$1")
  fi
}

# launch ROW [extra flags...]: run the row's configuration (common + model + algorithm + extras).
launch() {
  local row=$1
  shift
  common_args "$row"
  local args=("${COMMON_ARGS[@]}" "${MODEL_ARGS[@]}" "${ALGO_ARGS[@]}" "$@")
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    # The parser does not open the data: say here that the run would not find it (a warning: the dry run may
    # check a configuration for another machine).
    local file
    for file in "$DATA_DIR/math_train.jsonl" "$DATA_DIR/math500.jsonl"; do
      if [[ ! -f $file ]]; then
        echo "[asym] warning: $file does not exist; make it with: asym-rl prepare-data --tokenizer $MODEL_PATH --output_dir $DATA_DIR" >&2
      fi
    done
    # shellcheck disable=SC2086  # ASYM_LAUNCHER is a command line on purpose
    $ASYM_LAUNCHER "${args[@]}" --dry_run
  else
    mkdir -p "$SAVE_DIR/$row"
    ray job submit --address="$RAY_ADDRESS" -- python3 -m asym_openrlhf.cli.train_ppo_ray "${args[@]}"
  fi
}
