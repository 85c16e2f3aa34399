#pragma once
// Thread-count control for every parallel back-end qgnn uses.
#include <cstdint>

#include "qgnn/util/export.h"

namespace qgnn {

// Sets the intra-op thread count of ATen (at::parallel_for, OpenMP) and of OpenBLAS
// (pthread build; it keeps its own pool). threads <= 0 means every hardware thread
// (libtorch's own default here is 1).
QGNN_API void set_num_threads(int64_t threads);

// The intra-op thread count in force.
QGNN_API int64_t get_num_threads();

// Seeds libtorch's default CPU generator (parameter initialisation, dropout seeds).
QGNN_API void manual_seed(uint64_t seed);

}  // namespace qgnn
