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

// Dots of 8 heads of width dim (a multiple of 8) at once: per head the products are
// accumulated in one 8-lane vector, then an hadd tree turns the 8 head vectors into the
// 8 dots (instead of 8 separate horizontal sums).
static inline __m256 dot_8_heads(const float* __restrict d, const float* __restrict s,
                                 int64_t dim) {
  __m256 p[8];
  for (int h = 0; h < 8; ++h) {
    const float* dh = d + h * dim;
    const float* sh = s + h * dim;
    __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(dh), _mm256_loadu_ps(sh));
    for (int64_t c = 8; c < dim; c += 8) {
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(dh + c), _mm256_loadu_ps(sh + c), acc);
    }
    p[h] = acc;
  }
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(p[0], p[1]), _mm256_hadd_ps(p[2], p[3]));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(p[4], p[5]), _mm256_hadd_ps(p[6], p[7]));
  // u0 = [h0..h3 partial (lanes 0-3) | h0..h3 partial (lanes 4-7)], u1 likewise for h4..h7.
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

static void sddmm_dot_rows(const int64_t* __restrict indptr, const int64_t* __restrict indices,
                           const float* dst, const float* src, int64_t heads, int64_t dim,
                           float* __restrict out, int64_t rb, int64_t re) {
  constexpr int W = Vec::W;
  const int64_t ld = heads * dim;
  const int64_t nfull = dim / W;
  const int rem = static_cast<int>(dim % W);
  const Vec::M tail = Vec::mask(rem == 0 ? W : rem);
  if (heads % 8 == 0 && dim % 8 == 0 && dim > 0) {
    for (int64_t i = rb; i < re; ++i) {
      const float* drow = dst + i * ld;
      for (int64_t e = indptr[i]; e < indptr[i + 1]; ++e) {
        const float* srow = src + indices[e] * ld;
        for (int64_t h = 0; h < heads; h += 8) {
          _mm256_storeu_ps(out + e * heads + h, dot_8_heads(drow + h * dim, srow + h * dim, dim));
        }
      }
    }
    return;
  }
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
