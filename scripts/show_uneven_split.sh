#!/usr/bin/env bash
# What the launcher's batch-split check (train_ppo_ray.check_batch_split) prevents, shown on this CPU: two ZeRO-3
# policy ranks and a rollout batch of 3 prompts x 8 = 24 samples in micro-batches of 8, which upstream deals as
# 2 chunks to rank 0 and 1 to rank 1 (trainer/ray/launcher.py l.354-371). The check is switched off for this
# run only (the launcher refuses these settings otherwise), and the run gets TIMEOUT seconds (default 600).
# docs/train_on_gpus.md ("The uneven split") reports what it printed.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
WORK_DIR=${WORK_DIR:-$ROOT/outputs/uneven_split}
TIMEOUT=${TIMEOUT:-600}
rm -rf "$WORK_DIR" && mkdir -p "$WORK_DIR"
"$PYTHON" - "$WORK_DIR" <<'PY'
import sys
from pathlib import Path
from asym_openrlhf.cli.rehearse import ADDITION, write_addition_slice
from asym_openrlhf.lite.tasks import AdditionTask
write_addition_slice(Path(sys.argv[1]) / "train.jsonl", AdditionTask(**ADDITION).train[:6], "input", "label", "addition")
PY
start=$(date +%s)
setsid "$PYTHON" -c '
import sys
import asym_openrlhf.cli.launcher_settings as checks
checks.check_batch_split = lambda args: print("[uneven] batch-split check switched off", file=sys.stderr)
from asym_openrlhf.cli.train_ppo_ray import main
sys.exit(main(sys.argv[1:]))
' --cpu_backend --advantage_estimator asym_grpo \
  --actor.model_name_or_path "$ROOT/asym_openrlhf/assets/lite_addition" \
  --data.prompt_dataset "$WORK_DIR/train.jsonl" --data.input_key input --data.label_key label --data.max_len 28 \
  --reward.remote_url "$ROOT/asym_openrlhf/reward/math_reward.py" \
  --rollout.n_samples_per_prompt 8 --rollout.batch_size 3 --rollout.micro_batch_size 8 --rollout.max_new_tokens 12 \
  --train.batch_size 8 --train.micro_batch_size 2 --train.num_episodes 1 --train.colocate_all \
  --actor.adam.lr 5e-4 --algo.kl.init_coef 0 --actor.num_gpus_per_node 2 --vllm.num_engines 2 \
  --vllm.sync_backend gloo --ds.zero_stage 3 --ds.param_dtype bf16 --ds.attn_implementation sdpa \
  --ckpt.path "$WORK_DIR/ckpt" --ckpt.output_dir "$WORK_DIR/final" >"$WORK_DIR/run.log" 2>&1 &
pid=$!  # setsid made it a session and process-group leader: Ray's and vLLM's processes are in its group
for ((second = 0; second < TIMEOUT; second++)); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
if kill -0 "$pid" 2>/dev/null; then
  status=124
else
  wait "$pid"
  status=$?
fi
kill -9 -- "-$pid" 2>/dev/null || true
echo "exit status $status after $(($(date +%s) - start)) s (124: killed by the timeout); last lines of $WORK_DIR/run.log:"
grep -v "^\s*$" "$WORK_DIR/run.log" | tail -n 5
