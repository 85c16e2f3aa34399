// SDDMM (dot) row kernel and vector exp for one ISA; included by sddmm_kernel.cpp once
// per ISA after simd_vec.h (no include guard; see simd_vec.h).

namespace qgnn::cpu::QGNN_SIMD_NS {

// <a[0, dim), b[0, dim)> with two accumulators for long rows.
static inline float dot(const float* __restrict a, const float* __restrict b, int64_t nfull,
                        bool has_tail, Vec::M tail) {
  constexpr int W = Vec::W;
  Vec::V acc0 = Vec::zero(), acc1 = Vec::zero();
  int64_t v = 0;
  for (; v + 2 <= nfull; v += 2) {
    acc0 = Vec::fmadd(Vec::load(a + v * W), Vec::load(b + v * W), acc0);
    acc1 = Vec::fmadd(Vec::load(a + (v + 1) * W), Vec::load(b + (v + 1) * W), acc1);
  }
  if (v < nfull) acc0 = Vec::fmadd(Vec::load(a + v * W), Vec::load(b + v * W), acc0);
  if (has_tail) {
    acc1 = Vec::fmadd(Vec::load(a + nfull * W, tail), Vec::load(b + nfull * W, tail), acc1);
  }
  return Vec::hsum(Vec::add(acc0, acc1));
}

static void sddmm_dot_rows(const int64_t* __restrict indptr, const int64_t* __restrict indices,
                           const float* dst, const float* src, int64_t heads, int64_t dim,
                           float* __restrict out, int64_t rb, int64_t re) {
  constexpr int W = Vec::W;
  const int64_t ld = heads * dim;
  const int64_t nfull = dim / W;
  const int rem = static_cast<int>(dim % W);
  const Vec::M tail = Vec::mask(rem == 0 ? W : rem);
  for (int64_t i = rb; i < re; ++i) {
    const float* drow = dst + i * ld;
    for (int64_t e = indptr[i]; e < indptr[i + 1]; ++e) {
      const float* srow = src + indices[e] * ld;
      for (int64_t h = 0; h < heads; ++h) {
        out[e * heads + h] = dot(drow + h * dim, srow + h * dim, nfull, rem != 0, tail);
      }
    }
  }
}

static void exp_range(float* p, int64_t n) {
  constexpr int W = Vec::W;
  int64_t k = 0;
  for (; k + W <= n; k += W) Vec::store(p + k, Vec::exp(Vec::load(p + k)));
  if (k < n) {
    const Vec::M m = Vec::mask(static_cast<int>(n - k));
    Vec::store(p + k, Vec::exp(Vec::load(p + k, m)), m);
  }
}

}  // namespace qgnn::cpu::QGNN_SIMD_NS
