#!/usr/bin/env bash
# Sets everything up (Debian packages, build) and runs qgnn's main job on the bundled
# Cora dataset: `qgnn run` (SGQuant end to end: fp32 GCN, automatic bit selection,
# fine-tuning, a row of SGQuant's Table III). Extra arguments are passed to `qgnn`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh qgnn_cli  # only what the main job runs; tests build in scripts/test.sh
if [[ $# -gt 0 ]]; then
  exec build/qgnn "$@"
fi
exec build/qgnn run
