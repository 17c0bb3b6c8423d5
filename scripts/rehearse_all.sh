#!/usr/bin/env bash
# Rehearses every launch script of one model folder on this CPU (`asym-rl rehearse`, 2 ranks, a kill and a
# resume each), one after the other, and prints a Markdown table: script, verdict, seconds. The table in
# docs/train_on_gpus.md ("Rehearsals of the Qwen3-4B scripts") comes from this command.
#   bash scripts/rehearse_all.sh [MODEL_DIR] [extra flags for every script...]
# MODEL_DIR defaults to examples/scripts/qwen3-4b. WORK_DIR (default outputs/rehearse_all) holds each script's
# rehearsal folder; a script whose folder already holds a verdict is not run again (delete the folder to redo).
# DATA_DIR must hold the files the scripts read (asym-rl prepare-data); rehearse checks them, then swaps in
# addition prompts for the tiny model. About 2-3 minutes a script on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ASYM_RL=${ASYM_RL:-$ROOT/.venv/bin/asym-rl}
MODEL_DIR=${1:-$ROOT/examples/scripts/qwen3-4b}
shift || true
WORK_DIR=${WORK_DIR:-$ROOT/outputs/rehearse_all}
mkdir -p "$WORK_DIR"

scripts=("$MODEL_DIR"/train_*.sh)
echo "| script | verdict | seconds |"
echo "|---|---|---|"
for index in "${!scripts[@]}"; do
  script=${scripts[$index]}
  name=$(basename "$script" .sh)
  out=$WORK_DIR/$name
  echo "[rehearse_all] $((index + 1))/${#scripts[@]} $name" >&2
  if [[ ! -f $out.verdict ]]; then
    rm -rf "$out"
    start=$(date +%s)
    "$ASYM_RL" rehearse --out "$out" "$script" "$@" >"$out.stdout" 2>&1 || true
    seconds=$(($(date +%s) - start))
    verdict=$(tail -n 1 "$out.stdout" | sed -E 's/^\[rehearse\] (PASSED|FAILED).*/\1/')
    [[ $verdict == PASSED || $verdict == FAILED ]] || verdict="error: $(tail -n 1 "$out.stdout")"
    printf '%s\t%s\n' "$verdict" "$seconds" >"$out.verdict.tmp" && mv "$out.verdict.tmp" "$out.verdict"
  fi
  IFS=$'\t' read -r verdict seconds <"$out.verdict"
  echo "| \`$name.sh\` | $verdict | $seconds |"
done
