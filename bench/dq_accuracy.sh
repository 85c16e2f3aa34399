#!/usr/bin/env bash
# Degree-Quant accuracy table, our protocol: for each dataset and model (kipf preset,
# public split), SEEDS runs of `qgnn train` at FP32 and with quantization-aware training
# (plain QAT with the momentum min/max observer, QAT with the percentile observer, and
# Degree-Quant = protective masking + percentile), at INT8 and INT4. Prints a Markdown
# table of mean +- std test accuracy; JSON per configuration in bench/out/dq/.
# Usage: bench/dq_accuracy.sh [DATA_DIR] [SEEDS]   (env DATASETS, MODELS, THREADS, QGNN_BIN)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/datasets}
SEEDS=${2:-10}
DATASETS=${DATASETS:-"cora citeseer"}
MODELS=${MODELS:-"gcn gat gin"}
THREADS=${THREADS:-2}
QGNN=${QGNN_BIN:-build/qgnn}
OUT=${OUT:-bench/out/dq}
mkdir -p "$OUT"
configs=("fp32|" "int8 QAT|--qat int8" "int8 QAT pct|--qat int8 --observer percentile"
  "int8 DQ|--qat int8 --degree-quant --observer percentile" "int4 QAT|--qat int4"
  "int4 QAT pct|--qat int4 --observer percentile"
  "int4 DQ|--qat int4 --degree-quant --observer percentile")
header="| dataset | model |"
rule="| --- | --- |"
for c in "${configs[@]}"; do
  header+=" ${c%%|*} |"
  rule+=" --- |"
done
echo "$header"
echo "$rule"
for d in $DATASETS; do
  for m in $MODELS; do
    row="| $d | $m |"
    for c in "${configs[@]}"; do
      name=${c%%|*}
      flags=${c#*|}
      f="$OUT/$d-$m-${name// /_}.json"
      # shellcheck disable=SC2086
      "$QGNN" train --dataset "$DATA/$d.npz" --model "$m" --preset kipf --runs "$SEEDS" \
        --threads "$THREADS" --quiet --json "$f" $flags >/dev/null
      row+=" $(jq -r '"\(.test_acc_mean * 100 | round / 100) ± \(.test_acc_std * 100 | round / 100)"' "$f") |"
    done
    echo "$row"
  done
done
