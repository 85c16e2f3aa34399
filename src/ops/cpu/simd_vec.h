// SIMD vector traits for one instruction set, included once per ISA (no include guard).
//
// The including file defines QGNN_SIMD_NS (namespace of this instantiation) and
// QGNN_SIMD_AVX512 (0: AVX2 + FMA, the build baseline; 1: AVX-512F/VL/BW/DQ). For the
// AVX-512 copy it wraps the include in `#pragma GCC push_options` / `#pragma GCC target`,
// so everything defined here and in the kernels that follow is compiled for that ISA and
// only called after a run-time CPU check (kernels.h: active_isa()).
#include <immintrin.h>

#include <cstdint>

namespace qgnn::cpu::QGNN_SIMD_NS {

#if QGNN_SIMD_AVX512
struct Vec {
  static constexpr int W = 16;
  using V = __m512;
  using M = __mmask16;  // lane mask for row tails
  static inline V zero() { return _mm512_setzero_ps(); }
  static inline V set1(float a) { return _mm512_set1_ps(a); }
  static inline V load(const float* p) { return _mm512_loadu_ps(p); }
  static inline V load(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  static inline void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static inline void store(float* p, V v, M m) { _mm512_mask_storeu_ps(p, m, v); }
  static inline V add(V a, V b) { return _mm512_add_ps(a, b); }
  static inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static inline V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  // Mask of the first n lanes, 1 <= n <= W.
  static inline M mask(int n) { return static_cast<M>((1u << n) - 1u); }
  static inline float hsum(V v) { return _mm512_reduce_add_ps(v); }
  using I = __m512i;  // lane index vector for permute
  static inline I load_index(const int32_t* p) { return _mm512_loadu_si512(p); }
  // out[l] = v[idx[l]]
  static inline V permute(V v, I idx) { return _mm512_permutexvar_ps(idx, v); }

  // exp(x), Cephes expf polynomial; x < -87.3 gives 0, x is clamped at 88.
  static inline V exp(V x) {
    const M underflow = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ);
    x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
    const V fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    V y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    __m512i n = _mm512_cvtps_epi32(fx);
    n = _mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23);
    y = _mm512_mul_ps(y, _mm512_castsi512_ps(n));
    return _mm512_maskz_mov_ps(static_cast<M>(~underflow), y);
  }
};
#else
alignas(32) static const int32_t kTailMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                       0,  0,  0,  0,  0,  0,  0,  0};
struct Vec {
  static constexpr int W = 8;
  using V = __m256;
  using M = __m256i;
  static inline V zero() { return _mm256_setzero_ps(); }
  static inline V set1(float a) { return _mm256_set1_ps(a); }
  static inline V load(const float* p) { return _mm256_loadu_ps(p); }
  static inline V load(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  static inline void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static inline void store(float* p, V v, M m) { _mm256_maskstore_ps(p, m, v); }
  static inline V add(V a, V b) { return _mm256_add_ps(a, b); }
  static inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static inline V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static inline M mask(int n) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTailMaskTable + 8 - n));
  }
  using I = __m256i;
  static inline I load_index(const int32_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static inline V permute(V v, I idx) { return _mm256_permutevar8x32_ps(v, idx); }
  static inline float hsum(V v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 shuf = _mm_movehdup_ps(lo);
    __m128 sums = _mm_add_ps(lo, shuf);
    shuf = _mm_movehl_ps(shuf, sums);
    return _mm_cvtss_f32(_mm_add_ss(sums, shuf));
  }

  static inline V exp(V x) {
    const V underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    const V fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    V y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i n = _mm256_cvtps_epi32(fx);
    n = _mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(n));
    return _mm256_andnot_ps(underflow, y);
  }
};
#endif

// Loads vector k of a block of K vectors; the last one is masked when the block ends at a
// row tail.
template <int K, bool Masked>
static inline Vec::V load_k(const float* p, int k, Vec::M tail) {
  if constexpr (Masked) {
    if (k == K - 1) return Vec::load(p + k * Vec::W, tail);
  }
  return Vec::load(p + k * Vec::W);
}

template <int K, bool Masked>
static inline void store_k(float* p, int k, Vec::V v, Vec::M tail) {
  if constexpr (Masked) {
    if (k == K - 1) {
      Vec::store(p + k * Vec::W, v, tail);
      return;
    }
  }
  Vec::store(p + k * Vec::W, v);
}

}  // namespace qgnn::cpu::QGNN_SIMD_NS
