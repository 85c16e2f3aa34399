#!/usr/bin/env bash
# Accuracy table (DESIGN.md protocol): every model on every dataset, kipf preset, 10 seeds,
# test accuracy at the best-validation epoch, mean +- sample std. Writes JSON per cell to
# bench/out/acc/ and prints a Markdown table.
# Usage: bench/accuracy.sh [DATA_DIR] [RUNS] [THREADS]   (DATA_DIR default ../shared/datasets)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/datasets}
RUNS=${2:-10}
THREADS=${3:-2}
DATASETS=${DATASETS:-"cora citeseer amazon_computers amazon_photo coauthor_cs coauthor_physics"}
MODELS=${MODELS:-"gcn gat agnn sage gin"}
OUT=bench/out/acc
mkdir -p "$OUT"
echo "| dataset | model | test acc % (mean +- std, $RUNS seeds) | val acc % | epoch ms | inference ms |"
echo "| --- | --- | --- | --- | --- | --- |"
for d in $DATASETS; do
  for m in $MODELS; do
    ${QGNN_BIN:-build/qgnn} train --dataset "$DATA/$d.npz" --model "$m" --runs "$RUNS" --threads "$THREADS" \
      --quiet --json "$OUT/$d-$m.json" >/dev/null
    jq -r --arg d "$d" --arg m "$m" \
      '"| \($d) | \($m) | \(.test_acc_mean*100|round/100) +- \(.test_acc_std*100|round/100) | \(.val_acc_mean*100|round/100) | \(.epoch_ms_median*1000|round/1000) | \(.infer_ms_median*1000|round/1000) |"' \
      "$OUT/$d-$m.json"
  done
done
