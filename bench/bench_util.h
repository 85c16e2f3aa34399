#pragma once
// Helpers shared by the benchmark programs (not part of the library).
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace qgnn::bench {

// Best-of-`reps` STREAM-like triad a = b + s c over three float arrays of n elements, in
// GB/s (10^9 bytes), counting 3 arrays x 4 bytes per element (STREAM's convention: no
// write-allocate traffic). Runs on at::get_num_threads() threads.
inline double triad_gbs(int64_t n, int reps) {
  using Clock = std::chrono::steady_clock;
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  const float s = 3.0f;
  at::parallel_for(0, n, 1 << 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) a[i] = 0.0f;
  });
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t = Clock::now();
    float* __restrict pa = a.data();
    const float* __restrict pb = b.data();
    const float* __restrict pc = c.data();
    at::parallel_for(0, n, 1 << 16, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) pa[i] = pb[i] + s * pc[i];
    });
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t).count());
  }
  if (a[n / 2] != 7.0f) std::fprintf(stderr, "triad: wrong result\n");
  return 3.0 * 4.0 * static_cast<double>(n) / (best * 1e6);
}

// Intra-op threads from QGNN_BENCH_THREADS, else one per hardware thread.
inline void set_threads_from_env() {
  const char* threads = std::getenv("QGNN_BENCH_THREADS");
  at::set_num_threads(threads ? std::atoi(threads)
                              : static_cast<int>(std::thread::hardware_concurrency()));
}

// The dataset paths of QGNN_BENCH_DATASET (comma-separated; empty entries skipped).
inline std::vector<std::string> dataset_paths_from_env() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("QGNN_BENCH_DATASET")) {
    std::stringstream ss(env);
    std::string path;
    while (std::getline(ss, path, ',')) {
      if (!path.empty()) paths.push_back(path);
    }
  }
  return paths;
}

}  // namespace qgnn::bench
