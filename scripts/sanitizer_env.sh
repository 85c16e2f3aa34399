# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: run-time options of the sanitizers.
# UBSan aborts on the first report (the build also has -fno-sanitize-recover=undefined);
# LeakSanitizer suppressions (libtorch's own start-up allocations only, never qgnn code)
# are in scripts/lsan.supp.
_qgnn_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=${_qgnn_root}/scripts/lsan.supp:print_suppressions=0"
export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer || true)}"
