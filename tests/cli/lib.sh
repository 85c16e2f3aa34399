# Shared checks for the CLI test scripts (sourced, not run). Each check counts one pass or
# one failure; `finish` prints "N passed, N failed" and returns non-zero on any failure.
# Needles must be specific: a value with its context ("got 5 at node 4"), never a single
# letter or a word the file name already contains.
# Before sourcing, set QGNN (the binary) and TMP (a scratch directory removed by the caller).

passed=0
failed=0

ok() { passed=$((passed + 1)); }
fail() {
  failed=$((failed + 1))
  echo "FAIL: $*"
}

# expect_error <description> <exit code> <needle>... -- <qgnn args>
# The run must exit with exactly <exit code>, print exactly one line on stderr and nothing
# else there, and that line must contain every needle.
expect_error() {
  local what=$1 want_rc=$2
  shift 2
  local needles=()
  while [[ $1 != -- ]]; do
    needles+=("$1")
    shift
  done
  shift
  "$QGNN" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
  local rc=$?
  local lines
  lines=$(wc -l <"$TMP/err")
  if [[ $rc -ne $want_rc ]]; then
    fail "$what: exit code $rc, expected $want_rc: $(head -c 400 "$TMP/err")"
    return
  fi
  if [[ $lines -ne 1 ]]; then
    fail "$what: expected one line on stderr, got $lines: $(head -c 400 "$TMP/err")"
    return
  fi
  local n
  for n in "${needles[@]}"; do
    if ! grep -qF -- "$n" "$TMP/err"; then
      fail "$what: stderr lacks '$n': $(cat "$TMP/err")"
      return
    fi
  done
  ok
}

# expect_json <description> <file> <jq filter>: the filter must evaluate to true (jq -e), so
# a missing key (null) fails.
expect_json() {
  local what=$1 file=$2 filter=$3
  if [[ ! -s $file ]]; then
    fail "$what: $file missing or empty"
    return
  fi
  if jq -e "$filter" "$file" >/dev/null 2>"$TMP/jqerr"; then ok; else
    fail "$what: jq -e '$filter' is not true on $file $(cat "$TMP/jqerr")"
  fi
}

# expect_no_temporaries <description> <dir>: no "*.tmp*" file is left in <dir>.
expect_no_temporaries() {
  local what=$1 dir=$2
  local left
  left=$(find "$dir" -maxdepth 1 -name '*.tmp*' | head -5)
  if [[ -z $left ]]; then ok; else fail "$what: temporary files left behind: $left"; fi
}

finish() {
  echo "$passed passed, $failed failed"
  [[ $failed -eq 0 ]]
}
