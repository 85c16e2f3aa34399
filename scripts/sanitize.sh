#!/usr/bin/env bash
# Builds the library, CLI, tests and libFuzzer targets with clang + AddressSanitizer +
# UBSan into build-san/ (one build dir for this script and scripts/fuzz.sh) and runs the
# whole ctest suite there; a sanitizer report fails the test that caused it.
# This build has no OpenMP (LLVM's libomp next to libtorch's libgomp would be two OpenMP
# runtimes in one process), so at::parallel_for loops run serially in it; and it needs a
# CPU with AVX-512 (CMakeLists.txt: clang ignores the kernels' `#pragma GCC target`).
# Usage: scripts/sanitize.sh [--build-only]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-build
for flag in avx512f avx512vl avx512bw avx512dq avx512_vnni; do
  if ! grep -qw "$flag" /proc/cpuinfo; then
    echo "sanitize.sh: the clang sanitizer build needs a CPU with $flag" >&2
    exit 1
  fi
done

# -O1 with line tables only: symbolized sanitizer reports at a fraction of the compile
# time of -O2 -g (the CI budget is 40 minutes for everything).
if [[ ! -f build-san/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S . -B build-san -G Ninja -DCMAKE_BUILD_TYPE=None \
    -DCMAKE_CXX_FLAGS="-O1 -gline-tables-only" \
    -DQGNN_SANITIZE=ON -DQGNN_BUILD_FUZZERS=ON -DQGNN_WITH_OPENMP=OFF \
    -DQGNN_BUILD_BENCHMARKS=OFF >/dev/null
fi
source scripts/sanitizer_env.sh  # the build runs qgnn_tests to list its tests
start=$SECONDS
cmake --build build-san -j"$(nproc)"
echo "sanitize.sh: build $((SECONDS - start)) s" >&2
[[ "${1:-}" == "--build-only" ]] && exit 0

start=$SECONDS
ctest --test-dir build-san --output-on-failure -j"$(nproc)"
echo "sanitize.sh: ctest $((SECONDS - start)) s" >&2
