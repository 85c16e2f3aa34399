#pragma once
// How the `qgnn` command reports a usage error: a bad flag value or combination that
// parsing alone cannot catch. main() prints its message as the one line on stderr and
// exits with code 2 (bad input and runtime failures exit with 1).
#include <stdexcept>
#include <string>

namespace qgnn::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace qgnn::cli
