#!/usr/bin/env bash
# Draws the configurations explored by `qgnn quantize --policy auto --csv POINTS.csv`
# (or `qgnn run --csv`): validation accuracy vs. memory saving, cost-model picks and
# random picks apart, the Pareto front as a line. Needs gnuplot (scripts/setup.sh).
# Usage: scripts/plot_pareto.sh POINTS.csv OUT.png [TITLE]
# Exit 0 on success, 1 on a bad points file or a failed plot (one line on stderr; no PNG
# and no temporary written, an existing OUT.png untouched), 2 on a usage error.
set -euo pipefail
if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "plot_pareto.sh: usage: plot_pareto.sh POINTS.csv OUT.png [TITLE]" >&2
  exit 2
fi
csv=$1
png=$2
title=${3:-"SGQuant automatic bit selection"}
# Columns: round,source,val_acc,test_acc,avg_bits,fp32_mb,quant_mb,saving,predicted_val_acc,pareto,...,policy
# (the quoted policy is last because it contains commas).
header="round,source,val_acc,test_acc,avg_bits,fp32_mb,quant_mb,saving,"
[[ -r $csv ]] || { echo "plot_pareto.sh: cannot read $csv" >&2; exit 1; }
if [[ "$(head -n 1 "$csv")" != "$header"* ]]; then
  echo "plot_pareto.sh: $csv: not a points file from qgnn --csv (header must start with $header)" >&2
  exit 1
fi
if [[ $(tail -n +2 "$csv" | wc -l) -eq 0 ]]; then
  echo "plot_pareto.sh: $csv: no configurations to plot" >&2
  exit 1
fi
tmp=$(mktemp -d)
out_tmp=$(mktemp "$png.tmp.XXXXXX") || { echo "plot_pareto.sh: cannot write $png" >&2; rm -rf "$tmp"; exit 1; }
trap 'rm -rf "$tmp"; rm -f "$out_tmp"' EXIT
tail -n +2 "$csv" | awk -F, '$2 == "random" { print $8, $3 }' >"$tmp/random.dat"
tail -n +2 "$csv" | awk -F, '$2 == "model" { print $8, $3 }' >"$tmp/model.dat"
tail -n +2 "$csv" | awk -F, '$10 == 1 { print $8, $3 }' | sort -g >"$tmp/front.dat"
if ! gnuplot >"$tmp/log" 2>&1 <<GP; then
set terminal pngcairo size 900,600 noenhanced
set output "$out_tmp"
set title "$title"
set xlabel "feature memory saving (x, fp32 bytes / dense-code bytes)"
set ylabel "validation accuracy (%)"
set grid
set key bottom left
plot "$tmp/random.dat" using 1:2 with points pt 7 ps 0.8 lc rgb "#999999" title "random", \
     "$tmp/model.dat" using 1:2 with points pt 5 ps 0.8 lc rgb "#1f77b4" title "cost model", \
     "$tmp/front.dat" using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb "#d62728" title "Pareto front"
GP
  echo "plot_pareto.sh: gnuplot failed on $csv: $(head -n 1 "$tmp/log")" >&2
  exit 1
fi
mv "$out_tmp" "$png"
