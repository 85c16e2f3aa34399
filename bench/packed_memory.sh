#!/usr/bin/env bash
# Peak RSS and latency of full-graph inference, fp32 dense vs. packed 4-bit and 2-bit
# (every point, `qgnn memory`, one child process per policy, graph counted in all):
#  1. a generated graph with continuous features (default 2M nodes, 40M edge entries,
#     F = 256), untrained GCN and GAT (sgquant preset; memory does not depend on weights);
#  2. Coauthor Physics (row-normalized counts), trained GCN and GAT checkpoints, with
#     test accuracy and the agreement of packed and fake-quantized predictions.
# JSON per run in $OUT (default bench/out/packed_memory).
# Usage: bench/packed_memory.sh [DATA_DIR]
#   env NODES, EDGES, FEATURES, MODELS ("gcn gat"), POLICIES ("fp32,4,2"), REPEATS (3),
#   THREADS (2), OUT, QGNN_BIN, SKIP_GENERATED=1, SKIP_PHYSICS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/datasets}
BIN=${QGNN_BIN:-build/qgnn}
NODES=${NODES:-2000000} EDGES=${EDGES:-40000000} FEATURES=${FEATURES:-256}
MODELS=${MODELS:-"gcn gat"}
POLICIES=${POLICIES:-fp32,4,2}
REPEATS=${REPEATS:-3}
THREADS=${THREADS:-2}
OUT=${OUT:-bench/out/packed_memory}
mkdir -p "$OUT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
if [[ ${SKIP_GENERATED:-0} != 1 ]]; then
  g="$OUT/gen-$NODES-$EDGES-$FEATURES.npz"
  [[ -e $g ]] || "$BIN" generate --nodes "$NODES" --edges "$EDGES" --features "$FEATURES" \
    --classes 16 --seed 0 --out "$g" --threads "$THREADS" --quiet
  for m in $MODELS; do
    "$BIN" memory --dataset "$g" --model "$m" --policies "$POLICIES" --repeats "$REPEATS" \
      --threads "$THREADS" --json "$OUT/gen-$m.json"
  done
fi
if [[ ${SKIP_PHYSICS:-0} != 1 ]]; then
  for m in $MODELS; do
    ck="$OUT/physics-$m.ckpt"
    [[ -e $ck ]] || "$BIN" train --dataset "$DATA/coauthor_physics.npz" --feature-norm row \
      --model "$m" --preset sgquant --seed 0 --threads "$THREADS" --quiet --save "$ck" >/dev/null
    "$BIN" memory --checkpoint "$ck" --dataset "$DATA/coauthor_physics.npz" \
      --policies "$POLICIES" --repeats "$REPEATS" --threads "$THREADS" --check-fake \
      --json "$OUT/physics-$m.json"
  done
fi
# Ratios against fp32 dense (the first policy), per file.
for f in "$OUT"/*.json; do
  jq -r --arg f "$(basename "$f")" '
    (.rows[0]) as $b |
    .rows[] | "\($f) \(.policy): peak RSS \(.peak_rss_mb | round) MB (\(.peak_rss_mb / $b.peak_rss_mb * 100 | round / 100)x fp32), infer \(.infer_ms | round) ms (\(.infer_ms / $b.infer_ms * 100 | round / 100)x), test \(.test_acc * 100 | round / 100) %, agreement \(.fake_quant_agreement_pct // "-")"' "$f"
done
