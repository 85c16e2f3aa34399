#!/usr/bin/env bash
# Draws the configurations explored by `qgnn quantize --policy auto --csv POINTS.csv`
# (or `qgnn run --csv`): validation accuracy vs. memory saving, cost-model picks and
# random picks apart, the Pareto front as a line. Needs gnuplot (scripts/setup.sh).
# Usage: scripts/plot_pareto.sh POINTS.csv OUT.png [TITLE]
set -euo pipefail
csv=$1
png=$2
title=${3:-"SGQuant automatic bit selection"}
[[ -r $csv ]] || { echo "plot_pareto.sh: cannot read $csv" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Columns: round,source,val_acc,test_acc,avg_bits,fp32_mb,quant_mb,saving,pred,pareto,policy
# (the quoted policy is last because it contains commas).
tail -n +2 "$csv" | awk -F, '$2 == "random" { print $8, $3 }' >"$tmp/random.dat"
tail -n +2 "$csv" | awk -F, '$2 == "model" { print $8, $3 }' >"$tmp/model.dat"
tail -n +2 "$csv" | awk -F, '$10 == 1 { print $8, $3 }' | sort -g >"$tmp/front.dat"
gnuplot <<GP
set terminal pngcairo size 900,600 noenhanced
set output "$png.tmp"
set title "$title"
set xlabel "feature memory saving (x, fp32 bytes / stored bytes)"
set ylabel "validation accuracy (%)"
set grid
set key bottom left
plot "$tmp/random.dat" using 1:2 with points pt 7 ps 0.8 lc rgb "#999999" title "random", \
     "$tmp/model.dat" using 1:2 with points pt 5 ps 0.8 lc rgb "#1f77b4" title "cost model", \
     "$tmp/front.dat" using 1:2 with linespoints pt 9 ps 1.2 lw 2 lc rgb "#d62728" title "Pareto front"
GP
mv "$png.tmp" "$png"
