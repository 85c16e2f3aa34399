#!/usr/bin/env bash
# SGQuant Fig. 8: cost-model-guided search vs. random search measuring the same number of
# configurations (N_mea x (N_iter + 1)), same seeds; best saving within the drop budget.
# Usage: bench/fig8.sh [DATASET] [SEEDS]   (env MODELS, THREADS)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-cora}
SEEDS=${2:-3}
MODELS=${MODELS:-"gcn agnn gat"}
THREADS=${THREADS:-2}
OUT=${OUT:-bench/out/fig8}
mkdir -p "$OUT"
echo "| dataset | model | seed | cost model: saving (val %) | random: saving (val %) |"
echo "| --- | --- | --- | --- | --- |"
for m in $MODELS; do
  for ((s = 0; s < SEEDS; s++)); do
    for mode in model random; do
      extra=()
      [[ $mode == random ]] && extra=(--random-search)
      ${QGNN_BIN:-build/qgnn} run --dataset "$D" --model "$m" --seed "$s" --threads "$THREADS" \
        --quiet --finetune-epochs 0 "${extra[@]}" --json "$OUT/$D-$m-$s-$mode.json" \
        --csv "$OUT/$D-$m-$s-$mode.csv" >/dev/null
    done
    cell='if .search.within_budget == false then "none within budget"
          else "\(.search.best_saving*100|round/100)x (\(.search.best_val_acc))" end'
    a=$(jq -r "$cell" "$OUT/$D-$m-$s-model.json")
    b=$(jq -r "$cell" "$OUT/$D-$m-$s-random.json")
    echo "| $D | $m | $s | $a | $b |"
  done
done
