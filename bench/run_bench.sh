#!/usr/bin/env bash
# Runs the end-to-end benchmark driver in one process and prints a RESULTS.md section:
# machine, date, command, then triad / SpMM / training tables (bench/bench_suite.cpp).
# Usage: bench/run_bench.sh [DATA_DIR]   (default ../shared/datasets)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/datasets}
mkdir -p bench/out
echo "### Run of $(date -u +%Y-%m-%d) on $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p')"
echo
echo "Command: \`bench/run_bench.sh $DATA\` (build/bench_suite, Release build)."
echo
build/bench_suite --data-dir "$DATA" --json bench/out/bench_suite.json
