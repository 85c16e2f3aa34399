#!/usr/bin/env bash
# Sets everything up (Debian packages, build incl. tests) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
