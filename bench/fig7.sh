#!/usr/bin/env bash
# SGQuant Fig. 7 as a table: at the same memory budget (average bits), the test error of
# the best policy the search finds when it may combine only uniform bits, CWQ, CWQ+LWQ,
# or CWQ+LWQ+TAQ. For each model and seed: train fp32 (sgquant preset), then one
# `qgnn quantize --granularity G --max-avg-bits B` per level (same seed, same number of
# measured configurations; the objective is the best validation accuracy within B).
# Usage: bench/fig7.sh [DATASET] [SEEDS] [BUDGET]   (env MODELS, THREADS, QGNN_BIN)
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:-cora}
SEEDS=${2:-5}
BUDGET=${3:-1.5}
MODELS=${MODELS:-"gcn gat agnn"}
THREADS=${THREADS:-2}
QGNN=${QGNN_BIN:-build/qgnn}
OUT=${OUT:-bench/out/fig7}
mkdir -p "$OUT"
levels="uniform cwq lwq taq"
echo "| model | level | test error % (mean of $SEEDS) | fp32 test error % | avg bits | saving | budget |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for m in $MODELS; do
  for ((s = 0; s < SEEDS; s++)); do
    ckpt="$OUT/$DATASET-$m-$s.ckpt"
    "$QGNN" train --dataset "$DATASET" --model "$m" --preset sgquant --seed "$s" \
      --threads "$THREADS" --quiet --save "$ckpt" >/dev/null
    for g in $levels; do
      "$QGNN" quantize --checkpoint "$ckpt" --dataset "$DATASET" --granularity "$g" \
        --max-avg-bits "$BUDGET" --seed "$s" --threads "$THREADS" --quiet \
        --json "$OUT/$DATASET-$m-$s-$g.json" >/dev/null
    done
  done
  for g in $levels; do
    jq -s -r --arg m "$m" --arg g "$g" --arg b "$BUDGET" '
      def mean(f): (map(f) | add / length);
      def r2: . * 100 | round / 100;
      "| \($m) | \($g) | \(mean(100 - .quant_test_acc)|r2) | \(mean(100 - .fp32_test_acc)|r2) | \(mean(.avg_bits)|r2) | \(mean(.saving)|r2)x | <= \($b) |"' \
      "$OUT/$DATASET"-"$m"-*-"$g".json
  done
done
