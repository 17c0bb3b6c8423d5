#!/usr/bin/env bash
# Makes docs/images/plot_fig2_lite.png, the figure docs/lite.md shows for `asym-rl plot`: Fig. 2 for two
# methods of `asym-rl lite --quick` (AsymGRPO and GRPO, 40 steps, 2 seeds each), drawn as `asym-rl plot`
# draws them (EMA 0.7 over steps, mean and min-max band over seeds, at most 3 panels a row).
# About 2 minutes on 2 cores. WORK_DIR (default outputs/plot_figures) keeps the runs; a rerun reuses them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ASYM_RL=${ASYM_RL:-$ROOT/.venv/bin/asym-rl}
WORK_DIR=${WORK_DIR:-$ROOT/outputs/plot_figures}

runs=()
for method in main group_norm; do
  for seed in 0 1; do
    out=$WORK_DIR/$method/seed$seed
    "$ASYM_RL" lite --quick --steps 40 --seed "$seed" --advantage_estimator "$method" --output_dir "$out" >/dev/null
    label=$([[ $method == main ]] && echo "AsymGRPO" || echo "GRPO")
    runs+=("$label=$out")
  done
done
"$ASYM_RL" plot --runs "${runs[@]}" --figures fig2 --output "$WORK_DIR/figures"
cp "$WORK_DIR/figures/fig2.png" "$ROOT/docs/images/plot_fig2_lite.png"
echo "wrote $ROOT/docs/images/plot_fig2_lite.png"
