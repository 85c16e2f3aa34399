#!/usr/bin/env bash
# Degree-Quant speed: full-graph inference of QAT-trained GCN and GIN at FP32 (the float
# model, qgnn's own kernels) vs INT8 and INT4 (integer kernels), same run, same threads,
# on amazon_computers and a generated R-MAT graph (1M nodes, 20M edges, F = 128).
# Prints a Markdown table: median latency per precision, speed-up over FP32, and the INT8
# kernel breakdown (linear / aggregation / other). JSON per run in bench/out/int_speed/.
# Usage: bench/int_speed.sh [DATA_DIR]   (env GRAPHS, MODELS, THREAD_COUNTS, REPEAT,
#        EPOCHS, QGNN_BIN; GRAPHS entries are dataset names in DATA_DIR or "rmat1m")
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/datasets}
GRAPHS=${GRAPHS:-"amazon_computers rmat1m"}
MODELS=${MODELS:-"gcn gin"}
THREAD_COUNTS=${THREAD_COUNTS:-"1 2"}
REPEAT=${REPEAT:-10}
EPOCHS=${EPOCHS:-30}  # QAT epochs (accuracy is not the point here; ranges and weights are)
QGNN=${QGNN_BIN:-build/qgnn}
OUT=${OUT:-bench/out/int_speed}
mkdir -p "$OUT"
path_of() {
  if [ "$1" = rmat1m ]; then
    local f="$OUT/rmat1m.npz"
    [ -f "$f" ] || "$QGNN" generate --nodes 1000000 --edges 20000000 --features 128 \
      --classes 16 --seed 0 --out "$f" --quiet >/dev/null
    echo "$f"
  else
    echo "$DATA/$1.npz"
  fi
}
echo "| graph | model | threads | fp32 ms | int8 ms | int8 speed-up | int4 ms | int4 speed-up | int8 linear / aggregation / other ms | int8 agreement % |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for g in $GRAPHS; do
  p=$(path_of "$g")
  for m in $MODELS; do
    for b in int8 int4; do
      ck="$OUT/$g-$m-$b.ckpt"
      [ -f "$ck" ] || "$QGNN" train --dataset "$p" --model "$m" --qat "$b" --degree-quant \
        --observer percentile --epochs "$EPOCHS" --quiet --save "$ck" >/dev/null
    done
    for t in $THREAD_COUNTS; do
      for prec in fp32 int8 int4; do
        ck="$OUT/$g-$m-int8.ckpt"
        [ "$prec" = int4 ] && ck="$OUT/$g-$m-int4.ckpt"
        "$QGNN" infer --checkpoint "$ck" --dataset "$p" --precision "$prec" --repeat "$REPEAT" \
          --threads "$t" --quiet --json "$OUT/$g-$m-$prec-t$t.json" >/dev/null
      done
      f32=$(jq .latency_ms_median "$OUT/$g-$m-fp32-t$t.json")
      jq -r -s --arg g "$g" --arg m "$m" --arg t "$t" --argjson f "$f32" '
        def r(n): . * n | round / n;
        .[0] as $a | .[1] as $b |
        "| \($g) | \($m) | \($t) | \($f | r(100)) | \($a.latency_ms_median | r(100)) | \($f / $a.latency_ms_median | r(100))x | \($b.latency_ms_median | r(100)) | \($f / $b.latency_ms_median | r(100))x | \($a.linear_ms_median | r(100)) / \($a.aggregate_ms_median | r(100)) / \($a.other_ms_median | r(100)) | \($a.agreement_pct | r(1000)) |"' \
        "$OUT/$g-$m-int8-t$t.json" "$OUT/$g-$m-int4-t$t.json"
    done
  done
done
