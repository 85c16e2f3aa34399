#pragma once
// Helpers shared by the op front-ends (spmm, sddmm, edge_softmax, features); internal.
#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <c10/core/GradMode.h>

#include <cstdint>

#include "qgnn/graph/csr_graph.h"

namespace qgnn::detail {

// A CsrGraph stored in an autograd context (ctx->saved_data), keeping its caches (the
// transpose) shared with the caller's graph.
at::IValue pack_graph(const CsrGraph& g);
CsrGraph unpack_graph(const at::IValue& v);

// Y = A X without autograd.
//   x: [C, ...] contiguous float32 with numel / C = heads * dim.
//   w: undefined (all ones), [E] or [E, heads] contiguous float32 (an [E] weight with
//      heads > 1 applies to all heads). wperm: undefined or [E] int64 (w read as
//      w[wperm[e]], see cpu::spmm_sum).
//   returns [R, ...] (x's trailing shape).
at::Tensor spmm_raw(const CsrGraph& g, const at::Tensor& x, const at::Tensor& w,
                    const at::Tensor& wperm, int64_t heads);

// out[e, h] = <dst[i, h, :], src[j, h, :]> without autograd; dst [R, ...], src [C, ...]
// contiguous with numel / rows = heads * dim. Returns [E, heads].
at::Tensor sddmm_dot_raw(const CsrGraph& g, const at::Tensor& dst, const at::Tensor& src,
                         int64_t heads);

// Edge softmax of target rows [rb, re) without autograd, with edge_softmax's arithmetic
// (bit-identical per row). scores / out hold the rows' edges from edge `base` on:
// edge e is at (e - base) * heads. out may equal scores (in place).
void edge_softmax_rows(const int64_t* indptr, int64_t base, const float* scores, int64_t heads,
                       float* out, int64_t rb, int64_t re);

// True when autograd must record an op on these inputs.
inline bool needs_autograd(const at::Tensor& a, const at::Tensor& b = {}) {
  return at::GradMode::is_enabled() &&
         ((a.defined() && a.requires_grad()) || (b.defined() && b.requires_grad()));
}

}  // namespace qgnn::detail
