#!/usr/bin/env bash
# End-to-end checks of the `qgnn` command: bad input gives exactly one line on stderr that
# names the file, the array and the bad value, and a non-zero exit; a saved checkpoint
# reproduces its accuracy under `qgnn eval`; nothing is left half-written.
# Usage: test_cli.sh <path-to-qgnn> <repo data dir>
set -u
QGNN=$1
DATA=$2
FIX="$(cd "$(dirname "$0")/../data/cli" && pwd)"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect_error <description> <substring>... -- <qgnn args>
expect_error() {
  local what=$1; shift
  local needles=()
  while [[ $1 != -- ]]; do needles+=("$1"); shift; done
  shift
  "$QGNN" "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$TMP/err")
  if [[ $rc -eq 0 ]]; then fail "$what: exit code 0"; return; fi
  if [[ $lines -ne 1 ]]; then fail "$what: expected one line on stderr, got $lines:"; cat "$TMP/err"; return; fi
  for n in "${needles[@]}"; do
    if ! grep -qF -- "$n" "$TMP/err"; then fail "$what: stderr lacks '$n': $(cat "$TMP/err")"; return; fi
  done
  ok
}

expect_error "missing file" "does_not_exist.npz" -- info --dataset "$TMP/does_not_exist.npz"
expect_error "unknown bundled name" "no_such_dataset" -- info --dataset no_such_dataset
expect_error "truncated archive" "truncated.npz" -- info --dataset "$FIX/truncated.npz"
expect_error "not a zip" "not_a_zip.npz" -- info --dataset "$FIX/not_a_zip.npz"
expect_error "wrong dtype" "wrong_dtype.npz" "x" "<c8" -- info --dataset "$FIX/wrong_dtype.npz"
expect_error "index out of range" "index_out_of_range.npz" "indices" "17" -- \
  info --dataset "$FIX/index_out_of_range.npz"
expect_error "overlapping masks" "overlapping_masks.npz" "mask" "0" -- \
  info --dataset "$FIX/overlapping_masks.npz"
expect_error "label out of range" "label_out_of_range.npz" "y" "5" -- \
  info --dataset "$FIX/label_out_of_range.npz"
expect_error "missing array" "missing_labels.npz" "y" -- info --dataset "$FIX/missing_labels.npz"
expect_error "unknown model" "unknown model" "transformer" -- \
  train --dataset "$FIX/tiny_valid.npz" --model transformer --quiet
expect_error "unknown preset" "unknown preset" "huge" -- \
  train --dataset "$FIX/tiny_valid.npz" --model gcn --preset huge --quiet
expect_error "unknown feature norm" "feature" "cube" -- \
  train --dataset "$FIX/tiny_valid.npz" --model gcn --feature-norm cube --quiet
expect_error "missing checkpoint" "nothing.ckpt" -- \
  eval --checkpoint "$TMP/nothing.ckpt" --dataset "$FIX/tiny_valid.npz"
printf 'garbage' >"$TMP/garbage.ckpt"
expect_error "corrupt checkpoint" "garbage.ckpt" -- \
  eval --checkpoint "$TMP/garbage.ckpt" --dataset "$FIX/tiny_valid.npz"

# A failed run must not clobber an existing report.
echo '{"keep": true}' >"$TMP/keep.json"
"$QGNN" info --dataset "$FIX/truncated.npz" --json "$TMP/keep.json" 2>/dev/null
if grep -q keep "$TMP/keep.json"; then ok; else fail "existing JSON overwritten by a failed run"; fi

# Save and reload reproduces the accuracy, for every model.
for model in gcn gat agnn sage gin; do
  if "$QGNN" train --dataset "$FIX/tiny_valid.npz" --model "$model" --epochs 5 --quiet \
      --save "$TMP/$model.ckpt" --json "$TMP/$model-train.json" >/dev/null 2>"$TMP/err" &&
     "$QGNN" eval --checkpoint "$TMP/$model.ckpt" --dataset "$FIX/tiny_valid.npz" \
      --json "$TMP/$model-eval.json" >/dev/null 2>>"$TMP/err"; then
    a=$(jq '.test_acc[0]' "$TMP/$model-train.json")
    b=$(jq '.test_acc' "$TMP/$model-eval.json")
    if awk -v a="$a" -v b="$b" 'BEGIN { exit !(a + 0 == b + 0) }'; then ok; else
      fail "$model: eval test_acc $b != train test_acc $a"; fi
  else
    fail "$model: train/eval failed: $(cat "$TMP/err")"
  fi
  if ls "$TMP"/*.tmp.* >/dev/null 2>&1; then fail "$model: temporary files left behind"; fi
done

# The bundled dataset is found by name.
if "$QGNN" info --dataset cora --json "$TMP/cora.json" >/dev/null &&
   [[ $(jq .num_nodes "$TMP/cora.json") == 2708 ]]; then ok; else fail "info --dataset cora"; fi

# `qgnn memory`: one child per policy; packed features hold fewer bytes than dense fp32.
if "$QGNN" memory --dataset cora --policies fp32,csr,4,2 --repeats 1 --chunk-rows 500 \
     --json "$TMP/mem.json" >/dev/null 2>"$TMP/err" &&
   [[ $(jq '.rows | length' "$TMP/mem.json") == 4 ]] &&
   jq -e '.rows[0].x_mb > .rows[2].x_mb and .rows[2].x_mb > .rows[3].x_mb and
          (.rows | all(.peak_rss_mb > 0))' "$TMP/mem.json" >/dev/null; then ok; else
  fail "memory --dataset cora: $(cat "$TMP/err")"; fi
expect_error "memory: bad policy" "bit policy" -- memory --dataset cora --policies 4,bits=99

# `qgnn generate`: a bad value names its flag and writes nothing; a tiny graph is
# byte-identical for one seed and reads back with the requested sizes.
expect_error "generate: too few nodes" "--nodes" "got 1" -- \
  generate --nodes 1 --edges 10 --features 4 --classes 2 --out "$TMP/gen.npz"
expect_error "generate: homophily out of range" "--homophily" "1.5" -- \
  generate --nodes 100 --edges 500 --features 4 --classes 3 --homophily 1.5 --out "$TMP/gen.npz"
expect_error "generate: unwritable output" "--out" "$TMP/no/such/dir" -- \
  generate --nodes 100 --edges 500 --features 4 --classes 3 --out "$TMP/no/such/dir/gen.npz"
if [[ -e "$TMP/gen.npz" ]]; then fail "generate: a failed run wrote $TMP/gen.npz"; else ok; fi
if "$QGNN" generate --nodes 300 --edges 2000 --features 8 --classes 3 --seed 5 \
     --out "$TMP/gen.npz" --json "$TMP/gen.json" >"$TMP/out" 2>"$TMP/err" &&
   "$QGNN" generate --nodes 300 --edges 2000 --features 8 --classes 3 --seed 5 \
     --out "$TMP/gen2.npz" --quiet >/dev/null 2>>"$TMP/err" &&
   [[ $(wc -l <"$TMP/out") -eq 1 ]] && cmp -s "$TMP/gen.npz" "$TMP/gen2.npz" &&
   "$QGNN" info --dataset "$TMP/gen.npz" --json "$TMP/gen-info.json" >/dev/null 2>>"$TMP/err" &&
   jq -e '.num_nodes == 300 and .num_edges == 2000 and .num_features == 8 and
          .num_classes == 3' "$TMP/gen-info.json" >/dev/null &&
   jq -e '.num_edges == 2000 and .max_in_degree > 20' "$TMP/gen.json" >/dev/null; then ok; else
  fail "generate: $(cat "$TMP/out" "$TMP/err")"; fi

# QAT and integer inference: a QAT checkpoint saves, evaluates and runs as an integer
# model that predicts like its fake-quantized self; precision mismatches are one line.
if "$QGNN" train --dataset cora --model gcn --qat int8 --degree-quant --observer percentile \
     --epochs 30 --save "$TMP/qat.ckpt" --json "$TMP/qat.json" --quiet >/dev/null 2>"$TMP/err" &&
   "$QGNN" infer --checkpoint "$TMP/qat.ckpt" --dataset cora --precision int8 --repeat 2 \
     --json "$TMP/infer.json" >/dev/null 2>>"$TMP/err" &&
   "$QGNN" eval --checkpoint "$TMP/qat.ckpt" --dataset cora --json "$TMP/qeval.json" \
     >/dev/null 2>>"$TMP/err" &&
   jq -e --slurpfile t "$TMP/qat.json" '.agreement_pct >= 99.5 and
          (.test_acc - $t[0].test_acc[0] | fabs) <= 0.2' "$TMP/infer.json" >/dev/null &&
   jq -e --slurpfile t "$TMP/qat.json" '.test_acc == $t[0].test_acc[0]' "$TMP/qeval.json" \
     >/dev/null; then ok; else
  fail "qat int8 train / infer / eval: $(cat "$TMP/err")"; fi
expect_error "infer: int4 on an int8 checkpoint" "int8" "--precision int8" -- \
  infer --checkpoint "$TMP/qat.ckpt" --dataset cora --precision int4
expect_error "train: degree-quant without qat" "--degree-quant" -- \
  train --dataset cora --model gcn --degree-quant --epochs 1

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
