#pragma once
// Inverted dropout with a counter-based random number generator.
//
// libtorch's CPU bernoulli_ dominates PyG's epoch time on sparse inputs (REFERENCE.md:
// 67% on Cora). Here the keep decision of element k is a pure function of (seed, k):
// 16 bits of a 64-bit hash per element, so one hash decides four elements, loops
// vectorize, results do not depend on the thread count, and the backward regenerates
// the mask instead of storing it.
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "qgnn/util/export.h"

namespace qgnn {

// Draws a fresh 64-bit seed from libtorch's default CPU generator (so torch::manual_seed
// makes every dropout call reproducible).
QGNN_API uint64_t next_dropout_seed();

// y = x * m / (1 - p) with m_k = 1 with probability 1 - p (p resolved to 1/65536).
//   x: any shape, float32, contiguous CPU.  p in [0, 1).  returns: same shape.
// training == false or p == 0 returns x unchanged. Differentiable (dx = dy * m / (1-p)).
// Throws c10::Error if p is outside [0, 1).
QGNN_API at::Tensor dropout(const at::Tensor& x, double p, bool training);

// The keep mask for `n` elements under `seed` (1 = kept), as [n] uint8. For tests.
QGNN_API at::Tensor dropout_keep_mask(int64_t n, double p, uint64_t seed);

}  // namespace qgnn
