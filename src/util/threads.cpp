#include "qgnn/util/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/utils.h>

#include <algorithm>
#include <thread>

namespace qgnn {
namespace {

// OpenBLAS is reached through libtorch (libblas.so.3 may resolve to it); look the setter
// up at run time so that qgnn neither links OpenBLAS directly nor fails without it.
void set_openblas_threads(int threads) {
  using SetFn = void (*)(int);
  static SetFn fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (fn != nullptr) fn(threads);
}

}  // namespace

void set_num_threads(int64_t threads) {
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  at::set_num_threads(static_cast<int>(threads));
  set_openblas_threads(static_cast<int>(threads));
}

int64_t get_num_threads() { return at::get_num_threads(); }

void manual_seed(uint64_t seed) { torch::manual_seed(seed); }

}  // namespace qgnn
