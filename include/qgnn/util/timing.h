#pragma once
// Wall-clock intervals of the library's timed steps (epochs, forwards, search rounds).
#include <chrono>

namespace qgnn {

using Clock = std::chrono::steady_clock;

// Milliseconds from `since` to now (steady clock).
inline double ms_since(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

}  // namespace qgnn
