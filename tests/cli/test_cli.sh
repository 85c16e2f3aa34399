#!/usr/bin/env bash
# End-to-end checks of the `qgnn` command's contract (src/cli/main.cpp):
# - exit 0 on success, 1 on bad input or a runtime failure, 2 on a usage error, and
#   exactly one line on stderr for every error; --help and --version exit 0;
# - bad input names the file, the array and the bad value;
# - nothing is written on failure: for every output option of every command, a failing
#   run leaves no file and no temporary behind, and a file already at that path keeps its
#   bytes; a successful run leaves no temporary either;
# - a saved checkpoint reproduces its accuracy under `qgnn eval`.
# Usage: test_cli.sh <path-to-qgnn> <repo data dir>
set -u
QGNN=$1
DATA=$2
HERE="$(cd "$(dirname "$0")" && pwd)"
FIX="$(cd "$HERE/../data/cli" && pwd)"
PLOT="$(cd "$HERE/../../scripts" && pwd)/plot_pareto.sh"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# shellcheck source=lib.sh
source "$HERE/lib.sh"
TINY="$FIX/tiny_valid.npz"

# ---- usage errors: exit 2, one line naming the flag and the bad value ----
expect_error "negative threads" 2 "--threads must be >= 0, got -1" -- \
  train --dataset "$TINY" --model gcn --threads -1
expect_error "non-integer threads" 2 "--threads must be an integer, got 'abc'" -- \
  info --dataset "$TINY" --threads abc
expect_error "fractional runs" 2 "--runs must be an integer, got '1.5'" -- \
  train --dataset "$TINY" --model gcn --runs 1.5
expect_error "zero runs" 2 "--runs must be >= 1, got 0" -- train --dataset "$TINY" --model gcn --runs 0
expect_error "zero learning rate" 2 "--lr must be > 0, got 0" -- \
  train --dataset "$TINY" --model gcn --lr 0
expect_error "protection probability out of range" 2 "--dq-pmax must be in [0, 1], got 1.5" -- \
  train --dataset "$TINY" --model gcn --qat int8 --dq-pmax 1.5
expect_error "unknown model" 2 "--model must be one of agnn, gat, gcn, gin, sage, got 'transformer'" -- \
  train --dataset "$TINY" --model transformer --quiet
expect_error "unknown preset" 2 "--preset must be one of kipf, sgquant, got 'huge'" -- \
  train --dataset "$TINY" --model gcn --preset huge --quiet
expect_error "unknown feature norm" 2 "--feature-norm must be one of" "got 'cube'" -- \
  train --dataset "$TINY" --model gcn --feature-norm cube --quiet
expect_error "unknown precision" 2 "--precision must be one of fp32, int8, int4, got 'int2'" -- \
  infer --checkpoint "$TMP/none.ckpt" --dataset "$TINY" --precision int2
expect_error "missing required option" 2 "--model is required" -- train --dataset "$TINY"
expect_error "unexpected argument" 2 "not expected: --bogus" -- info --dataset "$TINY" --bogus
expect_error "no subcommand" 2 "a command is required" --
expect_error "unknown subcommand" 2 "unknown command 'bogus'" -- bogus --dataset "$TINY"
expect_error "bad policy" 2 "--policy is not a valid policy" "got 99 in 'emb=99'" -- \
  quantize --checkpoint "$TMP/none.ckpt" --dataset "$TINY" --policy emb=99
expect_error "memory: bad policy" 2 "--policies: bit policy 'bits=99'" -- \
  memory --dataset "$TINY" --policies 4,bits=99
expect_error "degree-quant without qat" 2 "--degree-quant needs --qat int8|int4" -- \
  train --dataset "$TINY" --model gcn --degree-quant --epochs 1
expect_error "observer without qat" 2 "--observer needs --qat int8|int4" -- \
  train --dataset "$TINY" --model gcn --observer percentile --epochs 1
expect_error "qat policy without qat" 2 "--qat-policy needs --qat int8|int4" -- \
  train --dataset "$TINY" --model gcn --qat-policy bits=8 --epochs 1
expect_error "bad qat policy" 2 "--qat-policy is not a valid policy" "unknown range rule 'often'" -- \
  train --dataset "$TINY" --model gcn --qat int8 --qat-policy "bits=8;range=often" --epochs 1
expect_error "qat policy the integer kernels cannot compute" 1 \
  "symmetric codes, not affine" -- \
  train --dataset "$TINY" --model gcn --qat int8 --qat-policy "bits=8;lin.scheme=affine" --epochs 1
expect_error "pmin above pmax" 2 "--dq-pmin must not exceed --dq-pmax, got 0.5 > 0.2" -- \
  train --dataset "$TINY" --model gcn --qat int8 --dq-pmin 0.5 --dq-pmax 0.2
expect_error "two outputs on one path" 2 "--save and --json name the same file" -- \
  train --dataset "$TINY" --model gcn --epochs 1 --json "$TMP/same" --save "$TMP/same"
expect_error "generate: too few nodes" 2 "--nodes" "got 1)" -- \
  generate --nodes 1 --edges 10 --features 4 --classes 2 --out "$TMP/gen.npz"
expect_error "generate: homophily out of range" 2 "--homophily" "got 1.5)" -- \
  generate --nodes 100 --edges 500 --features 4 --classes 3 --homophily 1.5 --out "$TMP/gen.npz"
if [[ -e "$TMP/gen.npz" ]]; then fail "generate: a failed run wrote $TMP/gen.npz"; else ok; fi

# --help and --version: exit 0, output on stdout, nothing on stderr.
for args in "--help" "--version" "train --help" "quantize --help"; do
  # shellcheck disable=SC2086
  if "$QGNN" $args >"$TMP/out" 2>"$TMP/err" && [[ -s "$TMP/out" && ! -s "$TMP/err" ]]; then ok; else
    fail "qgnn $args: expected exit 0 with output on stdout only"; fi
done
if grep -qF "percentile with --degree-quant" <("$QGNN" train --help); then ok; else
  fail "train --help does not say that --degree-quant defaults to the percentile observer"; fi

# ---- bad input: exit 1, one line naming the file, the array and the bad value ----
expect_error "missing file" 1 "read_npz($TMP/does_not_exist.npz): no such file" -- \
  info --dataset "$TMP/does_not_exist.npz"
expect_error "unknown bundled name" 1 "dataset 'no_such_dataset' not found" -- \
  info --dataset no_such_dataset
expect_error "truncated archive" 1 "truncated.npz): not a zip archive" -- \
  info --dataset "$FIX/truncated.npz"
expect_error "not a zip" 1 "not_a_zip.npz): not a zip archive" -- info --dataset "$FIX/not_a_zip.npz"
expect_error "wrong dtype" 1 "wrong_dtype.npz): x.npy: unsupported dtype '<c8'" -- \
  info --dataset "$FIX/wrong_dtype.npz"
expect_error "index out of range" 1 "index_out_of_range.npz): indices:" "got 17 at position 3" -- \
  info --dataset "$FIX/index_out_of_range.npz"
expect_error "overlapping masks" 1 "val_mask: overlaps train_mask (got node 0 in both)" -- \
  info --dataset "$FIX/overlapping_masks.npz"
expect_error "label out of range" 1 "y: labels must be in [0, num_classes = 2) (got 5 at node 4)" -- \
  info --dataset "$FIX/label_out_of_range.npz"
expect_error "missing array" 1 "y: required array is missing" -- \
  info --dataset "$FIX/missing_labels.npz"
expect_error "missing checkpoint" 1 "load_checkpoint($TMP/nothing.ckpt): cannot open file" -- \
  eval --checkpoint "$TMP/nothing.ckpt" --dataset "$TINY"
printf 'garbage' >"$TMP/garbage.ckpt"
expect_error "corrupt checkpoint" 1 "garbage.ckpt): unreadable archive: not a qgnn checkpoint" -- \
  eval --checkpoint "$TMP/garbage.ckpt" --dataset "$TINY"
expect_error "unwritable output" 1 "--json: cannot write $TMP/no/such/dir/r.json" -- \
  info --dataset "$TINY" --json "$TMP/no/such/dir/r.json"
expect_error "output is a directory" 1 "--save: cannot write $TMP (it is a directory)" -- \
  train --dataset "$TINY" --model gcn --epochs 1 --save "$TMP"
expect_error "generate: unwritable output" 1 "--out: cannot write $TMP/no/such/dir/gen.npz" -- \
  generate --nodes 100 --edges 500 --features 4 --classes 3 --out "$TMP/no/such/dir/gen.npz"

# ---- nothing written on failure ----
# fails_cleanly <description> <exit code> <output flag>... -- <qgnn args>
# Runs the failing command twice: with every output path absent (none may appear) and
# with a file already at every path (each must keep its bytes); no temporary may remain.
fails_cleanly() {
  local what=$1 rc=$2
  shift 2
  local flags=()
  while [[ $1 != -- ]]; do
    flags+=("$1")
    shift
  done
  shift
  local mode dir f p extra
  for mode in absent existing; do
    dir=$(mktemp -d "$TMP/outputs.XXXXXX")
    extra=()
    for f in "${flags[@]}"; do
      p="$dir/out${f//-/_}"
      [[ $mode == existing ]] && printf 'previous contents of %s\n' "$f" >"$p"
      extra+=("$f" "$p")
    done
    expect_error "$what ($mode outputs)" "$rc" -- "$@" "${extra[@]}"
    for f in "${flags[@]}"; do
      p="$dir/out${f//-/_}"
      if [[ $mode == absent ]]; then
        if [[ -e $p ]]; then fail "$what: a failed run wrote $f $p"; else ok; fi
      elif [[ "$(cat "$p" 2>/dev/null)" == "previous contents of $f" ]]; then ok; else
        fail "$what: a failed run changed the existing file at $f $p"
      fi
    done
    expect_no_temporaries "$what ($mode outputs)" "$dir"
  done
}

BAD="$FIX/truncated.npz"
fails_cleanly "info on a bad dataset" 1 --json -- info --dataset "$BAD"
fails_cleanly "train on a bad dataset" 1 --json --save -- train --dataset "$BAD" --model gcn
fails_cleanly "eval without a checkpoint" 1 --json -- eval --checkpoint "$TMP/none.ckpt" --dataset "$TINY"
fails_cleanly "quantize without a checkpoint" 1 --json --save --csv -- \
  quantize --checkpoint "$TMP/none.ckpt" --dataset "$TINY"
fails_cleanly "run on a bad dataset" 1 --json --save --csv -- run --dataset "$BAD"
fails_cleanly "memory on a bad dataset" 1 --json -- memory --dataset "$BAD" --policies fp32
fails_cleanly "infer without a checkpoint" 1 --json -- \
  infer --checkpoint "$TMP/none.ckpt" --dataset "$TINY"
fails_cleanly "generate with an unwritable json" 1 --out -- \
  generate --nodes 100 --edges 500 --features 4 --classes 3 --json "$TMP/no/such/dir/g.json"
# Failures after the work has started: the search finds nothing within an impossible
# memory budget after training and measuring (run), a usage error in a later output.
fails_cleanly "run: nothing fits the budget" 1 --json --save --csv -- \
  run --dataset "$TINY" --policy auto --max-avg-bits 0.01 --measure 2 --rounds 0 \
  --search-finetune-epochs 1 --quiet
fails_cleanly "train: later output unwritable" 1 --save -- \
  train --dataset "$TINY" --model gcn --epochs 2 --json "$TMP/no/such/dir/t.json"

# The Pareto plot: a bad points file leaves no PNG, no temporary and an existing PNG intact.
printf 'not,a,points,file\n' >"$TMP/bad.csv"
mkdir -p "$TMP/png"
if bash "$PLOT" "$TMP/bad.csv" "$TMP/png/new.png" >/dev/null 2>"$TMP/err"; then
  fail "plot_pareto.sh accepted a bad points file"
elif [[ $(wc -l <"$TMP/err") -ne 1 ]] || ! grep -qF "$TMP/bad.csv" "$TMP/err"; then
  fail "plot_pareto.sh: expected one line naming the bad file: $(cat "$TMP/err")"
elif [[ -e "$TMP/png/new.png" ]]; then fail "plot_pareto.sh wrote a PNG from a bad file"; else ok; fi
printf 'previous png\n' >"$TMP/png/old.png"
bash "$PLOT" "$TMP/bad.csv" "$TMP/png/old.png" >/dev/null 2>&1
if [[ "$(cat "$TMP/png/old.png")" == "previous png" ]]; then ok; else
  fail "plot_pareto.sh changed an existing PNG on failure"; fi
bash "$PLOT" "$TMP/missing.csv" "$TMP/png/old.png" >/dev/null 2>&1
if [[ $? -eq 1 && "$(cat "$TMP/png/old.png")" == "previous png" ]]; then ok; else
  fail "plot_pareto.sh on a missing file: expected exit 1 and the PNG untouched"; fi
expect_no_temporaries "plot_pareto.sh" "$TMP/png"

# ---- success paths ----
# Save and reload reproduces the accuracy, for every model; no temporaries remain.
mkdir -p "$TMP/models"
for model in gcn gat agnn sage gin; do
  if "$QGNN" train --dataset "$TINY" --model "$model" --epochs 5 --quiet \
    --save "$TMP/models/$model.ckpt" --json "$TMP/models/$model-train.json" >/dev/null 2>"$TMP/err" &&
    "$QGNN" eval --checkpoint "$TMP/models/$model.ckpt" --dataset "$TINY" \
      --json "$TMP/models/$model-eval.json" >/dev/null 2>>"$TMP/err"; then
    a=$(jq -e '.test_acc[0]' "$TMP/models/$model-train.json")
    b=$(jq -e '.test_acc' "$TMP/models/$model-eval.json")
    if [[ -n $a && -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN { exit !(a + 0 == b + 0) }'; then ok; else
      fail "$model: eval test_acc '$b' != train test_acc '$a'"; fi
  else
    fail "$model: train/eval failed: $(cat "$TMP/err")"
  fi
done
expect_no_temporaries "train --save / eval" "$TMP/models"

# The bundled dataset is found by name.
if "$QGNN" info --dataset cora --json "$TMP/cora.json" >/dev/null 2>"$TMP/err"; then
  expect_json "info --dataset cora" "$TMP/cora.json" \
    '.num_nodes == 2708 and .num_edges == 10556 and .num_features == 1433 and .num_classes == 7'
else fail "info --dataset cora: $(cat "$TMP/err")"; fi

# `qgnn memory`: one child per policy; packed features hold fewer bytes than dense fp32.
if "$QGNN" memory --dataset cora --policies fp32,csr,4,2 --repeats 1 --chunk-rows 500 \
  --json "$TMP/mem.json" >/dev/null 2>"$TMP/err"; then
  expect_json "memory --dataset cora" "$TMP/mem.json" \
    '(.rows | length) == 4 and .rows[0].x_mb > .rows[2].x_mb and .rows[2].x_mb > .rows[3].x_mb
     and (.rows | all(.peak_rss_mb > 0))'
else fail "memory --dataset cora: $(cat "$TMP/err")"; fi

# `qgnn memory --checkpoint`: a trained GAT at every point's 4 and 2 bits; packed
# inference predicts what the fake-quantized model predicts; test accuracy per policy.
if "$QGNN" train --dataset cora --model gat --epochs 20 --save "$TMP/gat.ckpt" --quiet \
  >/dev/null 2>"$TMP/err" &&
  "$QGNN" memory --checkpoint "$TMP/gat.ckpt" --dataset cora --policies fp32,4,2 --repeats 1 \
    --check-fake --json "$TMP/memck.json" >/dev/null 2>>"$TMP/err"; then
  expect_json "memory --checkpoint" "$TMP/memck.json" \
    '(.rows | length) == 3 and .checkpoint != "" and (.rows | all(.test_acc > 30))
     and .rows[1].fake_quant_agreement_pct == 100 and .rows[2].fake_quant_agreement_pct == 100
     and .rows[1].x_mb < .rows[0].x_mb and .rows[2].avg_bits < .rows[1].avg_bits
     and (.rows | all(.feature_norm == "row"))
     and (.rows[0].feature_mb_source | startswith("shapes"))'
else fail "memory --checkpoint: $(cat "$TMP/err")"; fi
expect_error "memory: --checkpoint with --model" 2 "--checkpoint excludes --model" -- \
  memory --dataset cora --checkpoint "$TMP/gat.ckpt" --model gcn
expect_error "memory: missing checkpoint" 1 "memory: 1 of 1 policies failed" "missing.ckpt" -- \
  memory --dataset cora --checkpoint "$TMP/missing.ckpt" --policies fp32

# `qgnn generate`: a tiny graph is byte-identical for one seed and reads back with the
# requested sizes.
if "$QGNN" generate --nodes 300 --edges 2000 --features 8 --classes 3 --seed 5 \
  --out "$TMP/gen.npz" --json "$TMP/gen.json" >"$TMP/out" 2>"$TMP/err" &&
  "$QGNN" generate --nodes 300 --edges 2000 --features 8 --classes 3 --seed 5 \
    --out "$TMP/gen2.npz" --quiet >/dev/null 2>>"$TMP/err" &&
  [[ $(wc -l <"$TMP/out") -eq 1 ]] && cmp -s "$TMP/gen.npz" "$TMP/gen2.npz" &&
  "$QGNN" info --dataset "$TMP/gen.npz" --json "$TMP/gen-info.json" >/dev/null 2>>"$TMP/err"; then
  expect_json "generate: sizes read back" "$TMP/gen-info.json" \
    '.num_nodes == 300 and .num_edges == 2000 and .num_features == 8 and .num_classes == 3'
  expect_json "generate: report" "$TMP/gen.json" '.num_edges == 2000 and .max_in_degree > 20'
else
  fail "generate: $(cat "$TMP/out" "$TMP/err")"
fi

# `qgnn convert`: an edge list with features and labels becomes a dataset that trains;
# a bad row is one line naming the file and the line; nothing is written then.
printf 'source,target\n' >"$TMP/edges.csv"
for i in $(seq 0 179); do printf '%d,%d\n%d,%d\n' "$i" $(((i + 1) % 180)) "$i" $(((i + 7) % 180)); done >>"$TMP/edges.csv"
for i in $(seq 0 179); do printf '%d,%d,%d\n' $((i % 3)) $((i % 2)) 1; done >"$TMP/feat.csv"
for i in $(seq 0 179); do echo $((i % 3)); done >"$TMP/labels.txt"
if "$QGNN" convert --edges "$TMP/edges.csv" --features "$TMP/feat.csv" --labels "$TMP/labels.txt" \
  --undirected --out "$TMP/conv.npz" --json "$TMP/conv.json" >"$TMP/out" 2>"$TMP/err" &&
  [[ $(wc -l <"$TMP/out") -eq 1 ]] &&
  "$QGNN" train --dataset "$TMP/conv.npz" --model gcn --epochs 5 --quiet >/dev/null 2>>"$TMP/err"; then
  expect_json "convert: report" "$TMP/conv.json" \
    '.num_nodes == 180 and .num_edges == 720 and .num_features == 3 and .num_classes == 3
     and .edge_lines == 360 and .duplicates_dropped == 0 and .public_split == false'
else
  fail "convert: $(cat "$TMP/out" "$TMP/err")"
fi
printf '0,1\n1,2\n4,oops\n' >"$TMP/bad_edges.csv"
expect_error "convert: bad edge row" 1 "convert: $TMP/bad_edges.csv:3: node id is not an integer (got 'oops')" -- \
  convert --edges "$TMP/bad_edges.csv" --features "$TMP/feat.csv" --labels "$TMP/labels.txt" \
  --out "$TMP/bad.npz"
if [[ -e "$TMP/bad.npz" ]]; then fail "convert: a failed run wrote $TMP/bad.npz"; else ok; fi
expect_error "convert: neither input" 2 "give either --edges (with --features and --labels) or --ogb" -- \
  convert --out "$TMP/none.npz"
expect_error "convert: delimiter with ogb" 2 "--delimiter goes with --edges" -- \
  convert --ogb "$TMP" --delimiter tab --out "$TMP/none.npz"
expect_error "convert: edges without labels" 2 "--edges needs --features and --labels" -- \
  convert --edges "$TMP/edges.csv" --features "$TMP/feat.csv" --out "$TMP/none.npz"

# QAT and integer inference: a QAT checkpoint saves, evaluates and runs as an integer
# model that predicts like its fake-quantized self; --degree-quant alone means the
# paper's method (percentile ranges), an explicit --observer wins.
if "$QGNN" train --dataset cora --model gcn --qat int8 --degree-quant \
  --epochs 30 --save "$TMP/qat.ckpt" --json "$TMP/qat.json" --quiet >/dev/null 2>"$TMP/err" &&
  "$QGNN" infer --checkpoint "$TMP/qat.ckpt" --dataset cora --precision int8 --repeat 2 \
    --json "$TMP/infer.json" >/dev/null 2>>"$TMP/err" &&
  "$QGNN" eval --checkpoint "$TMP/qat.ckpt" --dataset cora --json "$TMP/qeval.json" \
    >/dev/null 2>>"$TMP/err"; then
  expect_json "degree-quant defaults to percentile ranges" "$TMP/qat.json" \
    '.observer == "percentile" and .degree_quant == true and .qat == "int8"'
  t=$(jq -e '.test_acc[0]' "$TMP/qat.json")
  expect_json "int8 integer model agrees with the fake-quant model" "$TMP/infer.json" \
    ".agreement_pct >= 99.5 and ((.test_acc - $t) | fabs) <= 0.2"
  expect_json "eval reproduces a QAT checkpoint" "$TMP/qeval.json" ".test_acc == $t"
else
  fail "qat int8 train / infer / eval: $(cat "$TMP/err")"
fi
if "$QGNN" train --dataset "$TINY" --model gcn --qat int8 --degree-quant --observer momentum \
  --epochs 2 --json "$TMP/qat-m.json" --quiet >/dev/null 2>"$TMP/err"; then
  expect_json "an explicit --observer wins over the Degree-Quant default" "$TMP/qat-m.json" \
    '.observer == "momentum" and .degree_quant == true'
else fail "qat with --observer momentum: $(cat "$TMP/err")"; fi
expect_error "infer: int4 on an int8 checkpoint" 1 "trained with --qat int8" "run it with --precision int8" -- \
  infer --checkpoint "$TMP/qat.ckpt" --dataset cora --precision int4

finish
