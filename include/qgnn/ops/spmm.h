#pragma once
// Sparse-dense matrix product (message aggregation) with autograd.
#include <ATen/core/Tensor.h>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/util/export.h"

namespace qgnn {

enum class Reduce { kSum, kMean };

// Y = A X: out[i] = reduce_{e = (j -> i)} w_e * x[j] over the in-edges of row i
// (CsrGraph convention). With reduce = kMean the sum is divided by the in-degree (rows
// without edges give 0).
//   g:           CSR matrix [R, C] (square graph or rectangular sparse features).
//   x:           [C, F] float32, or [C, H, D] for multi-head values.
//   edge_weight: undefined (use g.weights(), or 1 if g has none), [E] float32, or
//                [E, H] float32 (one weight per edge and head; x must be [C, H, D]).
//                May require grad (attention coefficients).
//   returns:     [R, F] or [R, H, D] float32.
// Gradients: dX = A^T dY through the cached transpose (exact for directed graphs);
// dW_e = <dY[i], X[j]> (an SDDMM). Deterministic for a fixed thread count.
// Kernel: parallel over rows, gather-accumulate inner loop over F that vectorizes
// (AVX2 baseline, AVX-512 chosen at run time).
// REQUIRES: x is CPU float32 with x.size(0) == g.num_cols().
// Throws c10::Error naming the bad argument and its shape.
QGNN_API at::Tensor spmm(const CsrGraph& g, const at::Tensor& x, Reduce reduce = Reduce::kSum,
                         const at::Tensor& edge_weight = {});

namespace cpu {
// Raw kernel without autograd: out[i, h, :] = sum_e w[e, h] * x[idx[e], h, :].
//   x: [C, H*D] contiguous; w: undefined (all ones) or [E] / [E, H] contiguous;
//   out: [R, H*D], overwritten. Exposed for tests and benchmarks.
QGNN_API void spmm_sum_kernel(const CsrGraph& g, const at::Tensor& x, const at::Tensor& w,
                              int64_t heads, at::Tensor& out);
}  // namespace cpu

}  // namespace qgnn
