#!/usr/bin/env bash
# Integer model vs. the fake-quantized model it is converted from: for each model, width
# and seed, train with Degree-Quant on DATASET, run `qgnn infer --precision intB`, and
# report the minimum share of nodes with the same prediction and the largest test
# accuracy difference. JSON per run in bench/out/int_agreement/.
# Usage: bench/int_agreement.sh [DATASET] [SEEDS]   (env MODELS, THREADS, QGNN_BIN)
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:-cora}
SEEDS=${2:-10}
MODELS=${MODELS:-"gcn sage gin"}
THREADS=${THREADS:-1}
QGNN=${QGNN_BIN:-build/qgnn}
OUT=${OUT:-bench/out/int_agreement}
mkdir -p "$OUT"
echo "| model | precision | seeds | min same prediction % | max test accuracy difference (points) |"
echo "| --- | --- | --- | --- | --- |"
for m in $MODELS; do
  for b in int8 int4; do
    for ((s = 0; s < SEEDS; s++)); do
      "$QGNN" train --dataset "$DATASET" --model "$m" --qat "$b" --degree-quant \
        --observer percentile --seed "$s" --threads "$THREADS" --quiet \
        --save "$OUT/$m-$b-$s.ckpt" >/dev/null
      "$QGNN" infer --checkpoint "$OUT/$m-$b-$s.ckpt" --dataset "$DATASET" --precision "$b" \
        --repeat 1 --threads "$THREADS" --quiet --json "$OUT/$m-$b-$s.json" >/dev/null
    done
    jq -s -r --arg m "$m" --arg b "$b" '
      "| \($m) | \($b) | \(length) | \(map(.agreement_pct) | min * 1000 | round / 1000) | \(map(.test_acc - .fake_quant_test_acc | fabs) | max * 100 | round / 100) |"' \
      "$OUT/$m-$b"-*.json
  done
done
