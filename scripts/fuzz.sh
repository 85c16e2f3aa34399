#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, in build-san/, shared with
# scripts/sanitize.sh) and runs each for a bounded time on a seed corpus taken from the
# test fixtures. Fails on a crash, sanitizer report, leak, timeout (-timeout, seconds per
# input) or out-of-memory (-rss_limit_mb, also the per-allocation limit); the reproducer
# is left as build-san/fuzz/<target>/crash-* (or leak-, timeout-, oom-).
# Prints the executions per target. The working corpus in build-san/fuzz/<target>/corpus
# grows across runs. Usage: scripts/fuzz.sh [seconds-per-target] (default 60);
# FUZZ_TARGETS="npz bit_policy checkpoint convert" (the default) selects targets.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
scripts/sanitize.sh --build-only
source scripts/sanitizer_env.sh

work=build-san/fuzz
seeds() {  # seeds <target> <dir>: (re)creates the seed directory of a target
  local dir=$2 i=0
  rm -rf "$dir" && mkdir -p "$dir"
  case $1 in
    npz)
      cp tests/data/*.npz tests/data/*.npy tests/data/cli/*.npz tests/fuzz/seeds/npz/*.npz "$dir"/
      ;;
    bit_policy)
      { grep -oh 'parse("[^"]*")' tests/quant/test_bit_policy.cpp | sed 's/^parse("//; s/")$//'
        grep -oh "expect_error(\"[^\"]*\"" tests/quant/test_bit_policy.cpp |
          sed 's/^expect_error("//; s/"$//'
        grep -oh '`[a-z][a-z0-9.]*=[^`]*`' README.md | tr -d '`'
      } | sort -u | while IFS= read -r spec; do
        printf '%s' "$spec" >"$dir/spec_$((i++))"
      done
      ;;
    convert)
      # <selector byte><text>: 0 edges, 1 features, 2 labels, 3 train ids (fuzz_convert.cpp);
      # +4 one-based ids, +8 undirected.
      printf '\x00src,dst\n0,1\n1,2\n0,1\n3,3\n' >"$dir/edges_csv"
      printf '\x08# c\n0\t1\t0.5\n1\t2\t2\n2\t1\t7\n' >"$dir/edges_tsv_undirected"
      printf '\x04 1 2\n2 3\n4 1\n' >"$dir/edges_one_based"
      printf '\x01x,y\n1,2\n3,4\n5,6\n7,8\n' >"$dir/features"
      printf '\x02node,label\n3,1\n0,0\n1,2\n2,0\n' >"$dir/labels"
      printf '\x030\n3\n' >"$dir/train"
      ;;
    checkpoint)
      # The Release binary when there is one (CI runs scripts/test.sh first): same file
      # format, a fraction of the ASan binary's start-up time.
      local qgnn=build/qgnn
      [[ -x $qgnn ]] || qgnn=build-san/qgnn
      for m in gcn gat agnn sage gin; do
        "$qgnn" train --dataset tests/data/cli/tiny_valid.npz --model "$m" --epochs 2 \
          --quiet --save "$dir/$m.ckpt" >/dev/null
      done
      # "<config JSON>\n<meta JSON>" inputs (fuzz_checkpoint.cpp builds the archive).
      local meta='{"dataset": "tiny", "preset": "kipf", "feature_norm": "row", "split_seed": -1, "seed": 0, "val_acc": 50.0, "test_acc": 50.0, "extra": {}}'
      for m in gcn gat agnn sage gin; do
        printf '{"model": "%s", "in_channels": 3, "hidden_channels": 4, "out_channels": 2, "num_layers": 2, "heads": 2, "output_heads": 1, "dropout": 0.5, "attention_dropout": 0.0, "row_normalize_input": false}\n%s' \
          "$m" "$meta" >"$dir/config_$m.txt"
      done
      ;;
  esac
}

status=0
for t in ${FUZZ_TARGETS:-npz bit_policy checkpoint convert}; do
  dir=$work/$t
  mkdir -p "$dir/corpus"
  seeds "$t" "$dir/seeds"
  dict=()
  [[ -f tests/fuzz/seeds/$t.dict ]] && dict=(-dict="tests/fuzz/seeds/$t.dict")
  asan=$ASAN_OPTIONS
  rss_mb=2048
  if [[ $t == checkpoint ]]; then
    # Full malloc stacks, so that scripts/lsan.supp can name libtorch's archive-reader leak.
    asan+=":fast_unwind_on_malloc=0"
    # Known, not fixable here: libtorch 1.13's Unpickler resizes a std::string to a
    # BINUNICODE length read from the pickle (up to 4 GB) before finding the data short;
    # the resulting std::bad_alloc / c10::Error is caught. Allow that much.
    rss_mb=6144
  fi
  rc=0
  ASAN_OPTIONS=$asan build-san/fuzz_$t -max_total_time="$secs" -rss_limit_mb=$rss_mb -timeout=30 \
    -print_final_stats=1 -artifact_prefix="$dir/" "${dict[@]}" "$dir/corpus" "$dir/seeds" \
    >"$dir/log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  if ((rc != 0)); then
    echo "fuzz.sh: fuzz_$t FAILED (exit $rc) after ${execs:-?} executions; log $dir/log:" >&2
    grep -E 'ERROR|SUMMARY|Test unit written|runtime error|==[0-9]+==' "$dir/log" | head -20 >&2
    status=1
  else
    echo "fuzz.sh: fuzz_$t ${execs} executions in ${secs}s, corpus $(ls "$dir/corpus" | wc -l) inputs"
  fi
done
exit $status
