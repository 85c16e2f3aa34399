// SDDMM kernels (dot with a run-time choice between AVX2 and AVX-512; u_add_v and row
// sums in plain loops the compiler vectorizes over heads) and the vector exp used by
// edge_softmax.
// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own
// _mm512_undefined_* placeholders (a false positive, reported at the header's lines).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <ATen/ATen.h>
#include <immintrin.h>

#include "ops/cpu/kernels.h"

// Each ISA includes simd_vec.h before the kernel body: keep this order.
// clang-format off
#define QGNN_SIMD_NS avx2
#define QGNN_SIMD_AVX512 0
#include "ops/cpu/simd_vec.h"
#include "ops/cpu/sddmm_impl.h"
#undef QGNN_SIMD_NS
#undef QGNN_SIMD_AVX512

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")

#define QGNN_SIMD_NS avx512
#define QGNN_SIMD_AVX512 1
#include "ops/cpu/simd_vec.h"
#include "ops/cpu/sddmm_impl.h"
#undef QGNN_SIMD_NS
#undef QGNN_SIMD_AVX512
#pragma GCC pop_options
// clang-format on

namespace qgnn::cpu {

void sddmm_dot(const CsrView& g, const float* dst, const float* src, int64_t heads, int64_t dim,
               float* out) {
  const bool avx512 = active_isa() == Isa::kAvx512;
  const int64_t vecs = heads * ((dim + 15) / 16 + 2);
  parallel_rows(g.indptr, g.rows, vecs + 2, 2, [&](int64_t rb, int64_t re) {
    if (avx512)
      avx512::sddmm_dot_rows(g.indptr, g.indices, dst, src, heads, dim, out, rb, re);
    else
      avx2::sddmm_dot_rows(g.indptr, g.indices, dst, src, heads, dim, out, rb, re);
  });
}

void exp_inplace(float* p, int64_t n) {
  if (active_isa() == Isa::kAvx512)
    avx512::exp_range(p, n);
  else
    avx2::exp_range(p, n);
}

void sddmm_add(const CsrView& g, const float* dst, const float* src, int64_t heads, float* out) {
  const int64_t* __restrict indptr = g.indptr;
  const int64_t* __restrict indices = g.indices;
  parallel_rows(indptr, g.rows, heads + 2, heads + 2, [&](int64_t rb, int64_t re) {
    for (int64_t i = rb; i < re; ++i) {
      const float* __restrict d = dst + i * heads;
      for (int64_t e = indptr[i]; e < indptr[i + 1]; ++e) {
        const float* __restrict s = src + indices[e] * heads;
        float* __restrict o = out + e * heads;
        for (int64_t h = 0; h < heads; ++h) o[h] = d[h] + s[h];
      }
    }
  });
}

void row_sum(const CsrView& g, const float* v, const int64_t* perm, int64_t heads, float* out) {
  const int64_t* __restrict indptr = g.indptr;
  parallel_rows(indptr, g.rows, heads + 2, heads + 2, [&](int64_t rb, int64_t re) {
    for (int64_t i = rb; i < re; ++i) {
      float* __restrict o = out + i * heads;
      for (int64_t h = 0; h < heads; ++h) o[h] = 0.0f;
      for (int64_t e = indptr[i]; e < indptr[i + 1]; ++e) {
        const float* __restrict s = v + (perm ? perm[e] : e) * heads;
        for (int64_t h = 0; h < heads; ++h) o[h] += s[h];
      }
    }
  });
}

}  // namespace qgnn::cpu
