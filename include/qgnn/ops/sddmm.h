#pragma once
// Sampled dense-dense operations on the edges of a graph, with autograd.
#include <ATen/core/Tensor.h>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/util/export.h"

namespace qgnn {

// SDDMM (dot): for every edge e = (j -> i) and head h,
//   out[e, h] = <dst[i, h, :], src[j, h, :]>.
//   dst: [R, H, D] or [R, D] (H = 1) float32, indexed by target (row) node.
//   src: [C, H, D] or [C, D] float32, indexed by source (column) node.
//   returns: [E, H] float32 (H = 1 keeps shape [E, 1]).
// Used by AGNN's cosine attention (Thekumparampil et al. 2018, Eq. 6) and by the
// backward of spmm with respect to edge weights.
// REQUIRES: matching H and D, dst.size(0) == R, src.size(0) == C.
QGNN_API at::Tensor sddmm_dot(const CsrGraph& g, const at::Tensor& dst, const at::Tensor& src);

// Edge score from node scores ("u_add_v"): out[e, h] = dst[i, h] + src[j, h].
//   dst: [R, H], src: [C, H] float32; returns [E, H].
// GAT's e_ij = a_dst^T W h_i + a_src^T W h_j (Velickovic et al. 2018, Eq. 3, before the
// LeakyReLU). Gradients are the per-row / per-column sums of the edge gradient.
QGNN_API at::Tensor sddmm_add(const CsrGraph& g, const at::Tensor& dst, const at::Tensor& src);

}  // namespace qgnn
