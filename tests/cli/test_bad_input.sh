#!/usr/bin/env bash
# Inputs that would exhaust memory, degenerate datasets and broken checkpoints: each gives
# exit code 1 and one line on stderr naming the file, the array or field and the bad
# value. Fixtures are written into a scratch directory by qgnn_cli_fixtures
# (tests/cli/make_bad_fixtures.cpp); checkpoints are trained here on tiny_valid.npz.
# Usage: test_bad_input.sh <path-to-qgnn> <path-to-qgnn_cli_fixtures> <tests/data/cli dir>
set -u
QGNN=$1
MAKE_FIXTURES=$2
FIX=$3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"

if ! "$MAKE_FIXTURES" "$TMP" 2>"$TMP/err"; then
  fail "qgnn_cli_fixtures: $(cat "$TMP/err")"
  finish
  exit 1
fi

# Resources: nothing is allocated from a declared size before it is checked.
expect_error "num_classes 1e9 (would allocate ~24 GB in the random split)" 1 \
  "num_classes: must be <= N = 6" "(got 1000000000)" -- info --dataset "$TMP/many_classes.npz"
expect_error "shape needing 4 TB in a 16-byte member" 1 \
  "needs 4000000000000 data bytes (got 16)" -- info --dataset "$TMP/huge_shape.npz"
expect_error "shape whose element count overflows" 1 \
  "shape too large (got (4611686018427387904, 4))" -- info --dataset "$TMP/overflow_shape.npz"
expect_error "two members named y.npy" 1 "y.npy: duplicate member" -- \
  info --dataset "$TMP/duplicate_member.npz"

# Degenerate datasets.
expect_error "N = 0" 1 "indptr: the graph has no nodes" "(got [1])" -- \
  info --dataset "$TMP/no_nodes.npz"
expect_error "E = 0" 1 "indices: the graph has no edges" "(got [0])" -- \
  info --dataset "$TMP/no_edges.npz"
expect_error "F = 0" 1 "x: no features" "(got [6, 0])" -- info --dataset "$TMP/no_features.npz"
for m in train_mask val_mask test_mask; do
  expect_error "all-false $m" 1 "$m: selects no node" "(got 0 of 6 nodes set)" -- \
    train --dataset "$TMP/empty_$m.npz" --model gcn --epochs 2 --quiet
done
expect_error "duplicate edge" 1 "indices: duplicate edge" \
  "(got source 3 twice in row 2 at positions 4 and 5)" -- info --dataset "$TMP/duplicate_edge.npz"

# Valid variants: a self loop is kept (and counted); float16 features are read.
if "$QGNN" info --dataset "$TMP/self_loop.npz" --json "$TMP/self_loop.json" >"$TMP/out" \
     2>"$TMP/err" && grep -qF "self loops 1" "$TMP/out"; then ok; else
  fail "self loop: $(cat "$TMP/err" "$TMP/out")"; fi
expect_json "self loop: 11 edges" "$TMP/self_loop.json" '.num_edges == 11'
if "$QGNN" info --dataset "$TMP/float16.npz" --json "$TMP/float16.json" >"$TMP/out" \
     2>"$TMP/err" && grep -qF "x stored as float16, converted to float32" "$TMP/out"; then ok; else
  fail "float16 x: $(cat "$TMP/err" "$TMP/out")"; fi
expect_json "float16 x: 4 features, source dtype reported" "$TMP/float16.json" \
  '.num_features == 4 and .x_source_dtype == "float16"'

# Checkpoints: truncated at several lengths, and datasets that do not fit the model.
if "$QGNN" train --dataset "$FIX/tiny_valid.npz" --model gcn --epochs 3 --quiet \
     --save "$TMP/gcn.ckpt" >/dev/null 2>"$TMP/err"; then
  size=$(stat -c %s "$TMP/gcn.ckpt")
  for cut in 0 10 100 $((size / 4)) $((size / 2)) $((size * 3 / 4)) $((size - 22)) $((size - 1)); do
    head -c "$cut" "$TMP/gcn.ckpt" >"$TMP/cut_$cut.ckpt"
    expect_error "checkpoint cut to $cut of $size bytes" 1 \
      "load_checkpoint($TMP/cut_$cut.ckpt)" "corrupt or truncated checkpoint" -- \
      eval --checkpoint "$TMP/cut_$cut.ckpt" --dataset "$FIX/tiny_valid.npz"
  done
  expect_error "checkpoint for 4 features, dataset with 5" 1 "has 5 features" \
    "the checkpoint expects 4" -- eval --checkpoint "$TMP/gcn.ckpt" --dataset "$TMP/five_features.npz"
  expect_error "checkpoint for 2 classes, dataset with 3" 1 "3 classes" \
    "the checkpoint expects" -- eval --checkpoint "$TMP/gcn.ckpt" --dataset "$TMP/three_classes.npz"
else
  fail "train on tiny_valid.npz: $(cat "$TMP/err")"
fi

finish
