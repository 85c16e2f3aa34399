#pragma once
// Portable random helpers shared by the dataset code (internal).
#include <cstdint>
#include <limits>
#include <random>

namespace qgnn::detail {

// Uniform integer in [0, n) from mt19937_64 by rejection; unlike
// std::uniform_int_distribution, the result is the same on every standard library, so
// seeded splits and generated graphs are identical across platforms. REQUIRES: n >= 1.
inline uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t v;
  do {
    v = rng();
  } while (v >= limit);
  return v % n;
}

}  // namespace qgnn::detail
