#pragma once
// Internal CPU kernels shared by the sparse ops (not part of the public API).
//
// Every kernel computes each output row (or edge) independently and in a fixed order, so
// results are bitwise identical for any thread count. Work is split over rows into one
// chunk per thread with an equal number of edges (+ a per-row cost), because libtorch's
// OpenMP parallel_for hands each thread one contiguous range and power-law graphs put
// most edges in few rows.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/util/export.h"

namespace qgnn::cpu {

// SIMD level of the hand-vectorized kernels; chosen once at run time from the CPU
// (AVX-512F/VL/BW/DQ if present, else AVX2 + FMA, the build baseline). The environment
// variable QGNN_ISA=avx2 caps it; tests use set_isa_limit to compare both paths.
enum class Isa { kAvx2 = 0, kAvx512 = 1 };
QGNN_API Isa active_isa();
QGNN_API bool cpu_has_avx512();
// AVX-512 VNNI (vpdpbusd) on top of cpu_has_avx512(). The integer kernels use it only while
// active_isa() is kAvx512, so set_isa_limit(kAvx2) and QGNN_ISA=avx2 turn it off as well.
QGNN_API bool cpu_has_avx512_vnni();
// Caps the ISA (never raises it above what the CPU supports). Not thread-safe with
// respect to concurrently running kernels; for tests and benchmarks.
QGNN_API void set_isa_limit(Isa limit);
QGNN_API const char* isa_name(Isa isa);

// Raw CSR view handed to the SIMD kernels.
struct CsrView {
  const int64_t* indptr = nullptr;
  const int64_t* indices = nullptr;
  int64_t rows = 0;
};

inline CsrView view_of(const CsrGraph& g) {
  return {g.indptr().data_ptr<int64_t>(), g.indices().data_ptr<int64_t>(), g.num_rows()};
}

// Runs f(row_begin, row_end) over [0, rows) in at most get_num_threads() chunks whose
// cost indptr-span * edge_cost + rows * row_cost is balanced; one chunk when the whole
// job costs less than ~min_parallel_cost (thread wake-up is not free).
template <class F>
void parallel_rows(const int64_t* indptr, int64_t rows, int64_t edge_cost, int64_t row_cost,
                   const F& f, int64_t min_parallel_cost = 1 << 15) {
  if (rows <= 0) return;
  const int64_t num_edges = indptr[rows];
  const int64_t total = num_edges * edge_cost + rows * row_cost;
  int64_t chunks = at::get_num_threads();
  if (at::in_parallel_region() || total < min_parallel_cost) chunks = 1;
  chunks = std::max<int64_t>(1, std::min(chunks, rows));
  if (chunks == 1) {
    f(int64_t{0}, rows);
    return;
  }
  // Chunk c covers rows [bound(c), bound(c + 1)), bound(c) = first row whose prefix cost
  // reaches c * total / chunks.
  auto bound = [&](int64_t c) -> int64_t {
    if (c == 0) return 0;
    if (c == chunks) return rows;
    const int64_t target = total / chunks * c;
    int64_t lo = 0, hi = rows;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (indptr[mid] * edge_cost + mid * row_cost < target)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  };
  at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t rb = bound(c), re = bound(c + 1);
      if (rb < re) f(rb, re);
    }
  });
}

// out[i, h, :] = sum_{e in row i} w(e, h) * x[indices[e], h, :] for every row i of g.
//   x: [C, heads * dim] float32 rows with stride ldx; out: [R, heads * dim] with stride
//   ldo, every element written (no need to zero it). w: nullptr (all ones) or [E, heads]
//   (heads == 1: [E]); when wperm is given, w(e, h) = w[wperm[e] * heads + h] (used to
//   read the weights of A through the transpose without materializing them).
void spmm_sum(const CsrView& g, const float* x, int64_t ldx, const float* w, const int64_t* wperm,
              int64_t heads, int64_t dim, float* out, int64_t ldo);

// out[e, h] = <dst[i, h, :], src[indices[e], h, :]> for every edge e of row i.
//   dst: [R, heads * dim]; src: [C, heads * dim] (contiguous rows); out: [E, heads].
void sddmm_dot(const CsrView& g, const float* dst, const float* src, int64_t heads, int64_t dim,
               float* out);

// out[e, h] = dst[i, h] + src[indices[e], h] for every edge e of row i ("u_add_v").
void sddmm_add(const CsrView& g, const float* dst, const float* src, int64_t heads, float* out);

// out[i, h] = sum_{e in row i} v[p(e) * heads + h] with p(e) = perm ? perm[e] : e; rows
// without edges give 0. With the transpose and its perm this sums over out-edges.
void row_sum(const CsrView& g, const float* v, const int64_t* perm, int64_t heads, float* out);

// Vectorized exp over p[0, n) in place (|rel err| < 2e-7; inputs below -87.3 give 0).
QGNN_API void exp_inplace(float* p, int64_t n);

}  // namespace qgnn::cpu
