#!/usr/bin/env bash
# SGQuant's automatic search on continuous input features: for each DATASET:NORM and model
# (sgquant preset), SEEDS seeds of `qgnn run --feature-norm NORM` (fp32 training,
# automatic bit selection, fine-tuning, real packed inference). Prints a Markdown row per
# dataset and model: mean fp32 and quantized test accuracy, the mean drop with its range
# over the seeds, average code bits and the headline saving (dense codes plus
# parameters), and the policy each seed picked. JSON and CSV per run in $OUT.
# Usage: bench/continuous_table.sh [SEEDS]
#   env SETS ("coauthor_cs:row coauthor_physics:row cora:tfidf citeseer:tfidf
#   bench/out/data/gauss20k.npz:auto"), MODELS ("gcn agnn gat"), THREADS (2), OUT
#   (bench/out/continuous), QGNN_BIN, REPORT_ONLY=1 tabulates the JSON already in $OUT,
#   EXTRA (more `qgnn run` flags, e.g. "--margin-sigmas 0") with TAG (a name for them in
#   the file names, e.g. "m0"; required with EXTRA so runs of different flags never mix).
#   Bundled names are looked up in $QGNN_DATA_DIR (e.g. ../shared/datasets).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-5}
SETS=${SETS:-"coauthor_cs:row coauthor_physics:row cora:tfidf citeseer:tfidf bench/out/data/gauss20k.npz:auto"}
MODELS=${MODELS:-"gcn agnn gat"}
THREADS=${THREADS:-2}
OUT=${OUT:-bench/out/continuous}
EXTRA=${EXTRA:-}
TAG=${TAG:-}
if [[ -n $EXTRA && -z $TAG ]]; then
  echo "continuous_table.sh: EXTRA needs a TAG for its file names" >&2
  exit 2
fi
mkdir -p "$OUT"
echo "| dataset | norm | model | seeds | fp32 test % | quant test % | drop (range) | avg bits | saving | policies |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for set in $SETS; do
  data=${set%:*} norm=${set##*:}
  name=$(basename "$data" .npz)
  for m in $MODELS; do
    files=()
    for ((s = 0; s < SEEDS; s++)); do
      f="$OUT/$name-$norm-$m${TAG:+-$TAG}-$s.json"
      if [[ ${REPORT_ONLY:-0} != 1 && ! -e $f ]]; then
        ${QGNN_BIN:-build/qgnn} run --dataset "$data" --feature-norm "$norm" --model "$m" \
          --seed "$s" --threads "$THREADS" --quiet --json "$f" $EXTRA \
          --csv "${f%.json}.csv" >/dev/null
      fi
      [[ -e $f ]] && files+=("$f")
    done
    ((${#files[@]} > 0)) || continue
    jq -s -r --arg d "$name" --arg n "$norm" --arg m "$m" --arg t "${TAG:+ ($TAG)}" '
      def mean(f): (map(f) | add / length);
      def r2: . * 100 | round / 100;
      (map(.fp32_test_acc - .quant_test_acc)) as $drops |
      "| \($d) | \($n) | \($m)\($t) | \(length) | \(mean(.fp32_test_acc)|r2) | \(mean(.quant_test_acc)|r2) | \(mean(.fp32_test_acc - .quant_test_acc)|r2) (\($drops|min|r2) to \($drops|max|r2)) | \(mean(.avg_bits)|r2) | \(mean(.saving)|r2)x | \(map("`" + .policy + "`") | join("<br>")) |"' \
      "${files[@]}"
  done
done
