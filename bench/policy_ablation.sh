#!/usr/bin/env bash
# Fixed bit policies on trained models: for each seed, train the fp32 model once
# (`qgnn train --preset sgquant --save`), then `qgnn quantize --policy P` (fine-tuning,
# packed inference) for every policy P. Prints one Markdown row per policy: mean fp32 and
# quantized test accuracy over the seeds, the mean drop with its range, average code bits
# and the dense saving (the headline). JSON per run in $OUT.
# Usage: bench/policy_ablation.sh DATASET NORM MODEL SEEDS 'POLICY' ['POLICY' ...]
#   DATASET: bundled name or .npz path; NORM: --feature-norm; env THREADS (2), OUT
#   (bench/out/ablation), QGNN_BIN, EXTRA (more quantize flags), TAG (file-name tag for
#   EXTRA), REPORT_ONLY=1 tabulates the JSON already in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
(($# >= 5)) || { echo "usage: $0 DATASET NORM MODEL SEEDS POLICY..." >&2; exit 2; }
DATA=$1 NORM=$2 MODEL=$3 SEEDS=$4
shift 4
BIN=${QGNN_BIN:-build/qgnn}
THREADS=${THREADS:-2}
OUT=${OUT:-bench/out/ablation}
TAG=${TAG:-}
mkdir -p "$OUT"
name=$(basename "$DATA" .npz)
key="$name-$NORM-$MODEL"
for ((s = 0; s < SEEDS; s++)); do
  ck="$OUT/$key-$s.ckpt"
  if [[ ${REPORT_ONLY:-0} != 1 && ! -e $ck ]]; then
    "$BIN" train --dataset "$DATA" --feature-norm "$NORM" --model "$MODEL" --preset sgquant \
      --seed "$s" --threads "$THREADS" --quiet --save "$ck" >/dev/null
  fi
done
echo "| dataset | norm | model | policy | seeds | fp32 test % | quant test % | drop (range) | avg bits | saving |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for p in "$@"; do
  files=()
  slug=$(printf '%s' "$p$TAG" | tr -c 'A-Za-z0-9=.,@<' '_')
  for ((s = 0; s < SEEDS; s++)); do
    f="$OUT/$key-$slug-$s.json"
    if [[ ${REPORT_ONLY:-0} != 1 && ! -e $f ]]; then
      # shellcheck disable=SC2086
      "$BIN" quantize --checkpoint "$OUT/$key-$s.ckpt" --dataset "$DATA" --policy "$p" \
        --seed "$s" --threads "$THREADS" --quiet --json "$f" ${EXTRA:-} >/dev/null
    fi
    [[ -e $f ]] && files+=("$f")
  done
  ((${#files[@]} > 0)) || continue
  jq -s -r --arg d "$name" --arg n "$NORM" --arg m "$MODEL" --arg p "$p$TAG" --arg f "${FIELD:-quant_test_acc}" '
    def mean(f): (map(f) | add / length);
    def r2: . * 100 | round / 100;
    (map(.fp32_test_acc - .[$f])) as $drops |
    "| \($d) | \($n) | \($m) | `\($p)` | \(length) | \(mean(.fp32_test_acc)|r2) | \(mean(.[$f])|r2) | \(mean(.fp32_test_acc - .[$f])|r2) (\($drops|min|r2) to \($drops|max|r2)) | \(mean(.avg_bits)|r2) | \(mean(.saving)|r2)x |"' \
    "${files[@]}"
done
