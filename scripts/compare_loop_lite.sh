#!/usr/bin/env bash
# AsymGRPO (beta+ 0.9, beta- 0.4) on addition from the shipped warm start, through OpenRLHF's whole loop on this
# CPU (launcher, Ray, vLLM, one DeepSpeed ZeRO-2 rank in bf16) and through `asym-rl lite` (fp32, one process),
# with the same G (8), prompts per step (16), optimizer batches (2 per step), learning rate (2e-4, constant),
# clip (0.2), response limit (12) and seeds; then one `asym-rl plot` figure of both. docs/train_on_gpus.md
# ("It learns through the real loop") shows the figure and the numbers this prints.
#   bash scripts/compare_loop_lite.sh [STEPS (default 40)] [SEEDS (default "0 1")]
# WORK_DIR (default outputs/loop_vs_lite) keeps every run; a run that finished is not run again.
# About 5 minutes per OpenRLHF run and 1 per lite run on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
STEPS=${1:-40}
SEEDS=${2:-0 1}
WORK_DIR=${WORK_DIR:-$ROOT/outputs/loop_vs_lite}
EVAL_EVERY=5
PROMPTS=16
mkdir -p "$WORK_DIR/data"

# The addition task of the warm start (its 256 held-out pairs are the validation set of both paths).
"$PYTHON" - "$WORK_DIR/data" "$((STEPS * PROMPTS))" <<'PY'
import sys
from pathlib import Path
from asym_openrlhf.cli.rehearse import ADDITION, write_addition_slice
from asym_openrlhf.lite.tasks import AdditionTask
out, count = Path(sys.argv[1]), int(sys.argv[2])
task = AdditionTask(**ADDITION)
write_addition_slice(out / "train.jsonl", task.train[:count], "input", "label", "addition")
write_addition_slice(out / "eval.jsonl", task.heldout, "input", "label", "addition")
PY

runs=()
for seed in $SEEDS; do
  run=$WORK_DIR/openrlhf/seed$seed
  if [[ ! -f $run/final/config.json ]]; then
    rm -rf "$run" && mkdir -p "$run"
    echo "[compare] OpenRLHF seed $seed: $STEPS steps (log: $run.log)" >&2
    "$PYTHON" -m asym_openrlhf.cli.train_ppo_ray --cpu_backend \
      --advantage_estimator asym_grpo --asym.beta_pos 0.9 --asym.beta_neg 0.4 \
      --actor.model_name_or_path "$ROOT/asym_openrlhf/assets/lite_addition" \
      --data.prompt_dataset "$WORK_DIR/data/train.jsonl" --data.input_key input --data.label_key label \
      --data.max_samples "$((STEPS * PROMPTS))" --data.max_len 28 \
      --eval.dataset "$WORK_DIR/data/eval.jsonl" --eval.steps "$EVAL_EVERY" --eval.temperature 0 \
      --eval.n_samples_per_prompt 1 \
      --reward.remote_url "$ROOT/asym_openrlhf/reward/math_reward.py" \
      --rollout.n_samples_per_prompt 8 --rollout.batch_size "$PROMPTS" --rollout.micro_batch_size 8 \
      --rollout.temperature 1.0 --rollout.max_new_tokens 12 \
      --train.batch_size 64 --train.micro_batch_size 8 --train.num_episodes 1 --train.max_epochs 1 \
      --train.seed "$seed" --train.colocate_all \
      --actor.adam.lr 2e-4 --actor.lr_scheduler constant --actor.lr_warmup_ratio 0 --actor.max_norm 1.0 \
      --actor.eps_clip_low_high 0.2 0.2 --actor.loss_agg_mode token-mean --algo.kl.init_coef 0 \
      --actor.num_gpus_per_node 1 --vllm.num_engines 1 --vllm.sync_backend gloo \
      --ds.zero_stage 2 --ds.param_dtype bf16 --ds.attn_implementation sdpa \
      --logger.tensorboard_dir "$run/tensorboard" --logger.logging_steps 1 \
      --ckpt.path "$run/ckpt" --ckpt.output_dir "$run/final" >"$run.log" 2>&1 \
      || { echo "[compare] OpenRLHF seed $seed failed: $(tail -n 1 "$run.log")" >&2; exit 1; }
  fi
  runs+=("OpenRLHF loop=$run/tensorboard")
done
for seed in $SEEDS; do
  run=$WORK_DIR/lite/seed$seed
  echo "[compare] lite seed $seed: $STEPS steps" >&2
  "$ROOT/.venv/bin/asym-rl" lite --advantage_estimator asym_grpo --asym.beta_pos 0.9 --asym.beta_neg 0.4 \
    --steps "$STEPS" --seed "$seed" --group_size 8 --prompts_per_step "$PROMPTS" --mini_batches 2 --lr 2e-4 \
    --eval_every "$EVAL_EVERY" --output_dir "$run" >/dev/null
  runs+=("asym-rl lite=$run")
done
"$ROOT/.venv/bin/asym-rl" plot --runs "${runs[@]}" --figures fig2 --ema 0 --output "$WORK_DIR/figures"
"$PYTHON" - "$WORK_DIR" "$SEEDS" <<'PY'
import sys
from pathlib import Path
from asym_openrlhf.cli.plot_runs import read_run
work, seeds = Path(sys.argv[1]), sys.argv[2].split()
for name, folder, key in (
    ("OpenRLHF loop", "openrlhf/seed{}/tensorboard", "eval/eval_addition_pass1"),
    ("asym-rl lite", "lite/seed{}", "eval/accuracy"),
):
    for seed in seeds:
        points = read_run(work / folder.format(seed)).series[key]
        steps = sorted(points)
        print(f"{name} seed {seed}: " + ", ".join(f"{step}: {points[step]:.3f}" for step in steps))
PY
