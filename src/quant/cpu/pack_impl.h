// Pack / decode / packed-SpMM row kernels for one ISA; included by pack_kernel.cpp once per
// ISA (no include guard). The includer defines QGNN_QUANT_NS (namespace of this copy) and
// QGNN_QUANT_AVX512 (0: AVX2 + FMA + F16C; 1: AVX-512F/VL/BW/DQ, compiled under
// `#pragma GCC target` and only called after a run-time CPU check).
//
// W codes (8 or 16) form a group of W * b / 8 whole bytes. expand<B> turns one group into
// W 32-bit lanes, compress<B> does the reverse. Loads may read up to kRead bytes from the
// start of a group; callers guarantee that those bytes exist (or copy the last bytes of the
// buffer into a zero-padded local array).

namespace qgnn::quant_cpu::QGNN_QUANT_NS {

#if QGNN_QUANT_AVX512
constexpr int W = 16;
constexpr int kRead = 16;
using V = __m512;
using I = __m512i;
using M = __mmask16;

static inline M tail_mask(int n) { return static_cast<M>((1u << n) - 1u); }
static inline V vset1(float a) { return _mm512_set1_ps(a); }
static inline V vzero() { return _mm512_setzero_ps(); }
static inline V vload(const float* p) { return _mm512_loadu_ps(p); }
static inline V vload(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
static inline void vstore(float* p, V v) { _mm512_storeu_ps(p, v); }
static inline void vstore(float* p, V v, M m) { _mm512_mask_storeu_ps(p, m, v); }
static inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
static inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
static inline V vfmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static inline V to_float(I q) { return _mm512_cvtepi32_ps(q); }
static inline float vhsum(V v) { return _mm512_reduce_add_ps(v); }
static inline I keep_lanes(I q, M m) { return _mm512_maskz_mov_epi32(m, q); }
static inline I vload_si(const void* p) { return _mm512_load_si512(p); }

// nzf: 1 (Rounding::kNonzero in a row with lo == 0: a non-zero x takes at least code 1)
// or 0 (plain rounding).
static inline I quantize(V x, V lo, V scale, V maxq, V nzf) {
  V t = _mm512_div_ps(_mm512_sub_ps(x, lo), scale);
  t = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const V floor = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NEQ_UQ), nzf);
  t = _mm512_min_ps(_mm512_max_ps(t, floor), maxq);
  return _mm512_cvttps_epi32(t);
}

template <int B>
static inline I expand(const uint8_t* p) {
  if constexpr (B == 8) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else if constexpr (B == 4) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m128i m = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(b, m);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
    return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
  } else if constexpr (B == 2) {
    uint32_t u;
    std::memcpy(&u, p, 4);
    const I sh = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(u)), sh),
                            _mm512_set1_epi32(3));
  } else if constexpr (B == 1) {
    uint16_t u;
    std::memcpy(&u, p, 2);
    return _mm512_maskz_mov_epi32(static_cast<M>(u), _mm512_set1_epi32(1));
  } else {
    const I v = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const I ctrl = _mm512_load_si512(kExpandAll<16>.ctrl[B]);
    const I sh = _mm512_load_si512(kExpandAll<16>.shift[B]);
    return _mm512_and_si512(_mm512_srlv_epi32(_mm512_shuffle_epi8(v, ctrl), sh),
                            _mm512_set1_epi32((1 << B) - 1));
  }
}

// Codes of one group as floats.
template <int B>
static inline V expand_f(const uint8_t* p) {
  if constexpr (B == 1) {
    uint16_t u;
    std::memcpy(&u, p, 2);
    return _mm512_maskz_mov_ps(static_cast<M>(u), _mm512_set1_ps(1.0f));
  } else {
    return to_float(expand<B>(p));
  }
}

// Writes the W codes of q (each < 2^B) as W * B / 8 bytes at out.
template <int B>
static inline void compress(I q, uint8_t* out) {
  if constexpr (B == 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(q));
  } else if constexpr (B == 4) {
    const __m128i b = _mm512_cvtepi32_epi8(q);
    const __m128i pairs = _mm_maddubs_epi16(b, _mm_set1_epi16(0x1001));  // c0 + 16 c1
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packus_epi16(pairs, pairs));
  } else if constexpr (B == 2) {
    const I sh = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const uint32_t u = static_cast<uint32_t>(_mm512_reduce_or_epi32(_mm512_sllv_epi32(q, sh)));
    std::memcpy(out, &u, 4);
  } else if constexpr (B == 1) {
    const uint16_t u = static_cast<uint16_t>(_mm512_test_epi32_mask(q, q));
    std::memcpy(out, &u, 2);
  } else {
    const I sh = _mm512_setr_epi64(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B);
    const I lo = _mm512_sllv_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(q)), sh);
    const I hi = _mm512_sllv_epi64(_mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(q, 1)), sh);
    const uint64_t a = static_cast<uint64_t>(_mm512_reduce_or_epi64(lo));
    const uint64_t b = static_cast<uint64_t>(_mm512_reduce_or_epi64(hi));
    std::memcpy(out, &a, B);
    std::memcpy(out + B, &b, B);
  }
}

static inline void half_store(uint8_t* out, V v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                      _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
static inline V half_load(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
static inline V half_load(const uint8_t* p, M m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

static inline bool minmax(const float* x, int64_t f, float* mn, float* mx) {
  V vmin = _mm512_set1_ps(x[0]), vmax = vmin;
  M bad = 0;
  int64_t k = 0;
  for (; k + W <= f; k += W) {
    const V v = _mm512_loadu_ps(x + k);
    vmin = _mm512_min_ps(vmin, v);
    vmax = _mm512_max_ps(vmax, v);
    bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  if (k < f) {
    const M m = tail_mask(static_cast<int>(f - k));
    const V v = _mm512_mask_loadu_ps(_mm512_set1_ps(x[0]), m, x + k);
    vmin = _mm512_min_ps(vmin, v);
    vmax = _mm512_max_ps(vmax, v);
    bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  *mn = _mm512_reduce_min_ps(vmin);
  *mx = _mm512_reduce_max_ps(vmax);
  return bad == 0 && std::isfinite(*mn) && std::isfinite(*mx);
}

#else  // AVX2

constexpr int W = 8;
constexpr int kRead = 8;
using V = __m256;
using I = __m256i;
using M = __m256i;

static inline M tail_mask(int n) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTailMask + 8 - n));
}
static inline V vset1(float a) { return _mm256_set1_ps(a); }
static inline V vzero() { return _mm256_setzero_ps(); }
static inline V vload(const float* p) { return _mm256_loadu_ps(p); }
static inline V vload(const float* p, M m) { return _mm256_maskload_ps(p, m); }
static inline void vstore(float* p, V v) { _mm256_storeu_ps(p, v); }
static inline void vstore(float* p, V v, M m) { _mm256_maskstore_ps(p, m, v); }
static inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
static inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
static inline V vfmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
static inline V to_float(I q) { return _mm256_cvtepi32_ps(q); }
static inline float vhsum(V v) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}
static inline I keep_lanes(I q, M m) { return _mm256_and_si256(q, m); }
static inline I vload_si(const void* p) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
}

// nzf: 1 (Rounding::kNonzero in a row with lo == 0: a non-zero x takes at least code 1)
// or 0 (plain rounding).
static inline I quantize(V x, V lo, V scale, V maxq, V nzf) {
  V t = _mm256_div_ps(_mm256_sub_ps(x, lo), scale);
  t = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const V floor = _mm256_and_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NEQ_UQ), nzf);
  t = _mm256_min_ps(_mm256_max_ps(t, floor), maxq);
  return _mm256_cvttps_epi32(t);
}

template <int B>
static inline I expand(const uint8_t* p) {
  if constexpr (B == 8) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  } else if constexpr (B == 4 || B == 2 || B == 1) {
    uint32_t u;  // 4 bytes (B used): a broadcast straight from memory
    std::memcpy(&u, p, 4);
    const I sh = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(u)), sh),
                            _mm256_set1_epi32((1 << B) - 1));
  } else {
    uint64_t u;
    std::memcpy(&u, p, 8);
    const I v = _mm256_set1_epi64x(static_cast<long long>(u));
    const I ctrl = _mm256_load_si256(reinterpret_cast<const __m256i*>(kExpandAll<8>.ctrl[B]));
    const I sh = _mm256_load_si256(reinterpret_cast<const __m256i*>(kExpandAll<8>.shift[B]));
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_shuffle_epi8(v, ctrl), sh),
                            _mm256_set1_epi32((1 << B) - 1));
  }
}

template <int B>
static inline V expand_f(const uint8_t* p) {
  if constexpr (B == 1) {
    return _mm256_load_ps(kBitLut.v[*p]);
  } else {
    return to_float(expand<B>(p));
  }
}

static inline uint32_t or_reduce32(I v) {
  __m128i r = _mm_or_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  r = _mm_or_si128(r, _mm_shuffle_epi32(r, 0x4E));
  r = _mm_or_si128(r, _mm_shuffle_epi32(r, 0xB1));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(r));
}

template <int B>
static inline void compress(I q, uint8_t* out) {
  if constexpr (B == 8) {
    const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packus_epi16(w16, w16));
  } else if constexpr (B == 1) {
    *out = static_cast<uint8_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(q, 31))));
  } else if constexpr (B == 2 || B == 4) {
    const I sh = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B);
    const uint32_t u = or_reduce32(_mm256_sllv_epi32(q, sh));
    std::memcpy(out, &u, B);
  } else {
    const I lo = _mm256_sllv_epi64(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(q)),
                                   _mm256_setr_epi64x(0, B, 2 * B, 3 * B));
    const I hi = _mm256_sllv_epi64(_mm256_cvtepu32_epi64(_mm256_extracti128_si256(q, 1)),
                                   _mm256_setr_epi64x(4 * B, 5 * B, 6 * B, 7 * B));
    const I v = _mm256_or_si256(lo, hi);
    __m128i r = _mm_or_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    r = _mm_or_si128(r, _mm_unpackhi_epi64(r, r));
    const uint64_t u = static_cast<uint64_t>(_mm_cvtsi128_si64(r));
    std::memcpy(out, &u, B);
  }
}

static inline void half_store(uint8_t* out, V v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                   _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
static inline V half_load(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
static inline V half_load(const uint8_t* p, M m) {
  // The mask of n float lanes covers the first n 16-bit lanes after a 32 -> 16 pack.
  alignas(16) uint16_t buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int n =
      __builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(m))));
  std::memcpy(buf, p, 2 * static_cast<size_t>(n));
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(buf)));
}

static inline float hreduce(V v, bool is_max) {
  __m128 r = is_max ? _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))
                    : _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s1 = _mm_movehl_ps(r, r);
  r = is_max ? _mm_max_ps(r, s1) : _mm_min_ps(r, s1);
  const __m128 s2 = _mm_shuffle_ps(r, r, 0x55);
  r = is_max ? _mm_max_ss(r, s2) : _mm_min_ss(r, s2);
  return _mm_cvtss_f32(r);
}

static inline bool minmax(const float* x, int64_t f, float* mn, float* mx) {
  V vmin = _mm256_set1_ps(x[0]), vmax = vmin, bad = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + W <= f; k += W) {
    const V v = _mm256_loadu_ps(x + k);
    vmin = _mm256_min_ps(vmin, v);
    vmax = _mm256_max_ps(vmax, v);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  if (k < f) {
    const M m = tail_mask(static_cast<int>(f - k));
    const V v = _mm256_blendv_ps(_mm256_set1_ps(x[0]), _mm256_maskload_ps(x + k, m),
                                 _mm256_castsi256_ps(m));
    vmin = _mm256_min_ps(vmin, v);
    vmax = _mm256_max_ps(vmax, v);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  *mn = hreduce(vmin, false);
  *mx = hreduce(vmax, true);
  return _mm256_movemask_ps(bad) == 0 && std::isfinite(*mn) && std::isfinite(*mx);
}

#endif

// Hides a product from the optimizer so that it is not fused into the following add (GCC
// contracts a * b + c into an FMA in C++ by default): x^ = q * scale + lo rounds twice,
// exactly like the formula evaluated in float32 (and like ATen's mul + add).
static inline V opaque(V v) {
  __asm__("" : "+v"(v));
  return v;
}

// Bytes of one group of W codes.
template <int B>
constexpr int kGroupBytes = W* B / 8;

template <int B>
static void pack_row_t(const float* __restrict x, int64_t f, float scale, float lo, float nz,
                       uint8_t* __restrict out) {
  const V vs = vset1(scale), vl = vset1(lo), vm = vset1(static_cast<float>((1 << B) - 1));
  const V vn = vset1(nz);
  int64_t k = 0;
  for (; k + W <= f; k += W, out += kGroupBytes<B>) {
    compress<B>(quantize(vload(x + k), vl, vs, vm, vn), out);
  }
  if (k < f) {
    const int rem = static_cast<int>(f - k);
    const M m = tail_mask(rem);
    const I q = keep_lanes(quantize(vload(x + k, m), vl, vs, vm, vn), m);
    alignas(16) uint8_t buf[16];
    compress<B>(q, buf);
    std::memcpy(out, buf, static_cast<size_t>((rem * B + 7) / 8));
  }
}

template <int B>
static void decode_row_t(const uint8_t* __restrict p, const uint8_t* end, int64_t f, float scale,
                         float lo, float* __restrict out) {
  const V vs = vset1(scale), vl = vset1(lo);
  int64_t k = 0;
  for (; k + W <= f && p + kRead <= end; k += W, p += kGroupBytes<B>) {
    vstore(out + k, vadd(opaque(vmul(expand_f<B>(p), vs)), vl));
  }
  if (k < f) {
    // Fewer than kRead bytes left in the row (or in the buffer): decode from a copy.
    alignas(64) uint8_t buf[3 * kRead] = {};
    std::memcpy(buf, p, static_cast<size_t>(((f - k) * B + 7) / 8));
    const uint8_t* q = buf;
    for (; k < f; k += W, q += kGroupBytes<B>) {
      const V v = vadd(opaque(vmul(expand_f<B>(q), vs)), vl);
      if (k + W <= f)
        vstore(out + k, v);
      else
        vstore(out + k, v, tail_mask(static_cast<int>(f - k)));
    }
  }
}

template <int B>
static void fake_row_t(const float* __restrict x, int64_t f, float scale, float lo, float nz,
                       float* __restrict out) {
  const V vs = vset1(scale), vl = vset1(lo), vm = vset1(static_cast<float>((1 << B) - 1));
  const V vn = vset1(nz);
  int64_t k = 0;
  for (; k + W <= f; k += W) {
    vstore(out + k, vadd(opaque(vmul(to_float(quantize(vload(x + k), vl, vs, vm, vn)), vs)), vl));
  }
  if (k < f) {
    const M m = tail_mask(static_cast<int>(f - k));
    vstore(out + k, vadd(opaque(vmul(to_float(quantize(vload(x + k, m), vl, vs, vm, vn)), vs)), vl),
           m);
  }
}

static void pack_half(const float* __restrict x, int64_t f, uint8_t* __restrict out) {
  int64_t k = 0;
  for (; k + W <= f; k += W) half_store(out + 2 * k, vload(x + k));
  if (k < f) {
    const int rem = static_cast<int>(f - k);
    alignas(64) uint8_t buf[2 * W];
    half_store(buf, vload(x + k, tail_mask(rem)));
    std::memcpy(out + 2 * k, buf, 2 * static_cast<size_t>(rem));
  }
}

static void decode_half(const uint8_t* __restrict p, int64_t f, float* __restrict out) {
  int64_t k = 0;
  for (; k + W <= f; k += W) vstore(out + k, half_load(p + 2 * k));
  if (k < f) {
    const M m = tail_mask(static_cast<int>(f - k));
    vstore(out + k, half_load(p + 2 * k, m), m);
  }
}

#define QGNN_QUANT_BITS_SWITCH(bits, CALL) \
  switch (bits) {                          \
    case 1:                                \
      CALL(1);                             \
      break;                               \
    case 2:                                \
      CALL(2);                             \
      break;                               \
    case 3:                                \
      CALL(3);                             \
      break;                               \
    case 4:                                \
      CALL(4);                             \
      break;                               \
    case 5:                                \
      CALL(5);                             \
      break;                               \
    case 6:                                \
      CALL(6);                             \
      break;                               \
    case 7:                                \
      CALL(7);                             \
      break;                               \
    case 8:                                \
      CALL(8);                             \
      break;                               \
    default:                               \
      break;                               \
  }

static void pack_row(const float* x, int64_t f, int bits, float scale, float lo, float nz,
                     uint8_t* out) {
#define QGNN_CALL(B) pack_row_t<B>(x, f, scale, lo, nz, out)
  QGNN_QUANT_BITS_SWITCH(bits, QGNN_CALL)
#undef QGNN_CALL
}

static void decode_row(const uint8_t* p, const uint8_t* end, int64_t f, int bits, float scale,
                       float lo, float* out) {
  if (bits == 32) {
    std::memcpy(out, p, 4 * static_cast<size_t>(f));
    return;
  }
  if (bits == 16) {
    decode_half(p, f, out);
    return;
  }
#define QGNN_CALL(B) decode_row_t<B>(p, end, f, scale, lo, out)
  QGNN_QUANT_BITS_SWITCH(bits, QGNN_CALL)
#undef QGNN_CALL
}

// The tail of dot_codes_t: fewer than kRead bytes left in the row (or in the buffer), so
// the codes are expanded from a copy whose bytes past the row are 0, against y masked to
// the row.
template <int B>
__attribute__((noinline)) static V dot_codes_tail(const uint8_t* p, int64_t k, int64_t f,
                                                  const float* y, V acc) {
  alignas(64) uint8_t buf[3 * kRead] = {};
  std::memcpy(buf, p, static_cast<size_t>(((f - k) * B + 7) / 8));
  const uint8_t* q = buf;
  for (; k < f; k += W, q += kGroupBytes<B>) {
    const V yv = k + W <= f ? vload(y + k) : vload(y + k, tail_mask(static_cast<int>(f - k)));
    acc = vfmadd(expand_f<B>(q), yv, acc);
  }
  return acc;
}

// sum_k y[k] q[k] over the f codes of a row at B bits (no scale, lo): the codes are
// expanded to float in registers and multiplied with y, never stored.
template <int B>
static inline __attribute__((always_inline)) float dot_codes_t(const uint8_t* __restrict p,
                                                               const uint8_t* end, int64_t f,
                                                               const float* __restrict y) {
  V acc = vzero();
  int64_t k = 0;
  for (; k + W <= f && p + kRead <= end; k += W, p += kGroupBytes<B>) {
    acc = vfmadd(expand_f<B>(p), vload(y + k), acc);
  }
  if (k < f) acc = dot_codes_tail<B>(p, k, f, y, acc);
  return vhsum(acc);
}

static float dot_codes(const uint8_t* p, const uint8_t* end, int64_t f, int bits, const float* y) {
  if (bits == 16 || bits == 32) {
    V acc = vzero();
    int64_t k = 0;
    const float* xf = reinterpret_cast<const float*>(p);  // may be unaligned
    for (; k + W <= f; k += W) {
      acc = vfmadd(bits == 32 ? vload(xf + k) : half_load(p + 2 * k), vload(y + k), acc);
    }
    if (k < f) {
      const M m = tail_mask(static_cast<int>(f - k));
      acc = vfmadd(bits == 32 ? vload(xf + k, m) : half_load(p + 2 * k, m), vload(y + k, m), acc);
    }
    return vhsum(acc);
  }
#define QGNN_CALL(B) return dot_codes_t<B>(p, end, f, y)
  QGNN_QUANT_BITS_SWITCH(bits, QGNN_CALL)
#undef QGNN_CALL
  return 0.0f;
}

// out[t] = x^_j . y for j = src[t] (bitmap x without its column scales: y carries them),
// through x^_j . y = scale_j (q_j . y) + lo_j sum(y); ysum = sum(y). One width: the loop
// is compiled for it; several: per-row dispatch.
template <int B>
static void dot_sources_t(const PackedView& x, const float* y, float ysum, const int64_t* src,
                          int64_t count, float* out) {
  const bool per_row = x.per_row && x.params != nullptr;
  const float scale0 = x.params != nullptr && !per_row ? x.params[0] : 1.0f;
  const float lo0 = x.params != nullptr && !per_row ? x.params[1] : 0.0f;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t j = src[t];
    const float codes = dot_codes_t<B>(x.codes + j * x.stride, x.end, x.cols, y);
    const float scale = per_row ? x.params[2 * j] : scale0;
    const float lo = per_row ? x.params[2 * j + 1] : lo0;
    out[t] = scale * codes + lo * ysum;
  }
}

static void dot_sources(const PackedView& x, const float* y, float ysum, const int64_t* src,
                        int64_t count, float* out) {
  if (x.group == nullptr && x.group_bits[0] <= 8) {
#define QGNN_CALL(B) dot_sources_t<B>(x, y, ysum, src, count, out)
    QGNN_QUANT_BITS_SWITCH(x.group_bits[0], QGNN_CALL)
#undef QGNN_CALL
    return;
  }
  for (int64_t t = 0; t < count; ++t) {
    const int64_t j = src[t];
    const int b = x.bits(j);
    const float codes = dot_codes(x.data(j), x.end, x.cols, b, y);
    out[t] = b > 8 ? codes : x.scale(j) * codes + x.lo(j) * ysum;
  }
}

static void fake_row(const float* x, int64_t f, int bits, float scale, float lo, float nz,
                     float* out) {
#define QGNN_CALL(B) fake_row_t<B>(x, f, scale, lo, nz, out)
  QGNN_QUANT_BITS_SWITCH(bits, QGNN_CALL)
#undef QGNN_CALL
}

// ---- packed SpMM ----
// One output row segment of K vectors [c0, c0 + K W) accumulated in registers over the
// row's in-edges: acc += (w_e scale_j) q_j, and the lo terms folded into one scalar
// corr = sum_e w_e lo_j (= lo sum_e w_e with one range per tensor or group) added at the
// end (x^_j = scale_j q_j + lo_j). The edge loop is specialized per bit width when the
// tensor has one group; rows of several widths decode through per-width tables (no branch
// per edge for widths <= 8), which keeps the accumulators in registers.

// Codes of one group expanded with run-time tables (any width 1..8).
static inline I expand_rt(const uint8_t* p, I ctrl, I sh, I mask) {
#if QGNN_QUANT_AVX512
  const I v = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_and_si512(_mm512_srlv_epi32(_mm512_shuffle_epi8(v, ctrl), sh), mask);
#else
  uint64_t u;
  std::memcpy(&u, p, 8);
  const I v = _mm256_set1_epi64x(static_cast<long long>(u));
  return _mm256_and_si256(_mm256_srlv_epi32(_mm256_shuffle_epi8(v, ctrl), sh), mask);
#endif
}

// a in the lanes whose 1-bit code is set, +0 elsewhere (W codes at p).
static inline V select_bits(const uint8_t* p, V a) {
#if QGNN_QUANT_AVX512
  uint16_t u;
  std::memcpy(&u, p, 2);
  return _mm512_maskz_mov_ps(static_cast<M>(u), a);
#else
  return _mm256_and_ps(a, _mm256_load_ps(reinterpret_cast<const float*>(kBitMaskLut.v[*p])));
#endif
}

template <int B, int K>
static inline void acc_codes(const uint8_t* p, V a, V* acc) {
  if constexpr (B == 1) {
#pragma GCC unroll 16
    for (int k = 0; k < K; ++k) acc[k] = vadd(acc[k], select_bits(p + k * (W / 8), a));
#if QGNN_QUANT_AVX512
  } else if constexpr (B == 4) {
    // 32 codes per 16-byte load, one byte per lane: the low nibbles (even codes) go to
    // acc[k], the high nibbles (odd codes) to acc[k + 1]; unshuffle_pairs() restores the
    // column order once per tile.
    int k = 0;
#pragma GCC unroll 16
    for (; k + 2 <= K; k += 2) {
      const I v =
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k * 8)));
      acc[k] = vfmadd(to_float(_mm512_and_si512(v, _mm512_set1_epi32(0x0F))), a, acc[k]);
      acc[k + 1] = vfmadd(to_float(_mm512_srli_epi32(v, 4)), a, acc[k + 1]);
    }
    if (k < K) acc[k] = vfmadd(expand_f<4>(p + k * 8), a, acc[k]);
#endif
  } else {
#pragma GCC unroll 16
    for (int k = 0; k < K; ++k) {
      acc[k] = vfmadd(expand_f<B>(p + k * kGroupBytes<B>), a, acc[k]);
    }
  }
}

template <int K, bool Masked>
static inline void acc_half(const uint8_t* p, V a, V* acc, M tail) {
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) {
    const V v = (Masked && k == K - 1) ? half_load(p + 2 * k * W, tail) : half_load(p + 2 * k * W);
    acc[k] = vfmadd(v, a, acc[k]);
  }
}

template <int K, bool Masked>
static inline void acc_float(const uint8_t* p, V a, V* acc, M tail) {
  const float* x = reinterpret_cast<const float*>(p);  // may be unaligned: unaligned loads
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) {
    const V v = (Masked && k == K - 1) ? vload(x + k * W, tail) : vload(x + k * W);
    acc[k] = vfmadd(v, a, acc[k]);
  }
}

// Copies the tile's bytes of a row near the end of the code buffer into a zeroed local
// array (the SIMD loads read up to kRead bytes past a group).
__attribute__((noinline)) static const uint8_t* copy_near_end(const uint8_t* p,
                                                              const uint8_t* row_end,
                                                              uint8_t* local, size_t size) {
  std::memset(local, 0, size);
  std::memcpy(local, p, static_cast<size_t>(std::min<int64_t>(row_end - p, size - 2 * kRead)));
  return local;
}

// Undoes the even / odd split of acc_codes<4, K> (AVX-512): pairs (acc[k], acc[k + 1])
// hold columns (2 l, 2 l + 1) of the 32 columns starting at 16 k.
template <int B, int K>
static inline void unshuffle_pairs(V* acc) {
#if QGNN_QUANT_AVX512
  if constexpr (B == 4) {
    const I lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const I hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
#pragma GCC unroll 16
    for (int k = 0; k + 2 <= K; k += 2) {
      const V even = acc[k], odd = acc[k + 1];
      acc[k] = _mm512_permutex2var_ps(even, lo, odd);
      acc[k + 1] = _mm512_permutex2var_ps(even, hi, odd);
    }
  }
#else
  (void)acc;
#endif
}

template <int K>
static inline void store_tile(float* o, const V* acc, float corr, bool masked, M tail) {
  const V c = vset1(corr);
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) {
    if (masked && k == K - 1)
      vstore(o + k * W, vadd(acc[k], c), tail);
    else
      vstore(o + k * W, vadd(acc[k], c));
  }
}

// One group of B bits (1..8, 16, 32).
// Masked: masked 16/32-bit loads of the last vector; masked_store: masked final store.
template <int B, int K, bool Masked>
static void spmm_tile_uniform(const PackedSpmmArgs& s, int64_t eb, int64_t ee, int64_t c0, M tail,
                              bool masked_store, float* __restrict o) {
  const PackedView& x = s.x;
  const int64_t* __restrict idx = s.indices;
  const float* __restrict w = s.w;
  const int64_t n = x.rows, stride = x.stride;
  constexpr int64_t kByteNum = B <= 8 ? B : 8 * (B / 8);  // bytes per 8 values = B
  const uint8_t* base = x.codes + c0 / 8 * kByteNum;
  const float* __restrict params = x.params;
  const bool per_row = x.per_row && params != nullptr;
  const float scale0 = params != nullptr && !per_row ? params[0] : 1.0f;
  const float lo0 = params != nullptr && !per_row ? params[1] : 0.0f;
  V acc[K];
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) acc[k] = vzero();
  float corr = 0.0f, wsum = 0.0f;
  alignas(64) uint8_t local[K * W + 2 * kRead];
  for (int64_t e = eb; e < ee; ++e) {
    const int64_t j = idx[e];
    if (static_cast<uint64_t>(j) >= static_cast<uint64_t>(n)) {
      s.bad_index->store(e, std::memory_order_relaxed);
      continue;
    }
    const float we = w != nullptr ? w[e] : 1.0f;
    float scale = scale0;
    if (per_row) {
      scale = params[2 * j];
      corr += we * params[2 * j + 1];
    } else {
      wsum += we;
    }
    const V a = vset1(we * scale);
    const uint8_t* p = base + j * stride;
    if constexpr (B <= 8) {
      if (j >= s.safe_rows) p = copy_near_end(p, x.codes + (j + 1) * stride, local, sizeof(local));
      acc_codes<B, K>(p, a, acc);
    } else if constexpr (B == 16) {
      acc_half<K, Masked>(p, a, acc, tail);
    } else {
      acc_float<K, Masked>(p, a, acc, tail);
    }
  }
  if (!per_row) corr = lo0 * wsum;
  unshuffle_pairs<B, K>(acc);
  store_tile<K>(o, acc, corr, masked_store, tail);
}

// Several groups: per-row bits, offsets and parameters.
template <int K, bool Masked>
static void spmm_tile_mixed(const PackedSpmmArgs& s, int64_t eb, int64_t ee, int64_t c0, M tail,
                            float* __restrict o) {
  const PackedView& x = s.x;
  const int64_t* __restrict idx = s.indices;
  const float* __restrict w = s.w;
  const int64_t n = x.rows;
  V acc[K];
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) acc[k] = vzero();
  float corr = 0.0f;
  alignas(64) uint8_t local[K * W + 2 * kRead];
  for (int64_t e = eb; e < ee; ++e) {
    const int64_t j = idx[e];
    if (static_cast<uint64_t>(j) >= static_cast<uint64_t>(n)) {
      s.bad_index->store(e, std::memory_order_relaxed);
      continue;
    }
    const float we = w != nullptr ? w[e] : 1.0f;
    const int b = x.group_bits[x.group[j]];
    const uint8_t* p = x.codes + x.offset[j];
    float scale = 1.0f;
    if (x.params != nullptr) {
      const float* pr = x.params + 2 * x.param_index(j);
      scale = pr[0];
      corr += we * pr[1];
    }
    const V a = vset1(we * scale);
    if (b <= 8) {
      p += c0 / 8 * b;
      if (j >= s.safe_rows) p = copy_near_end(p, x.codes + x.offset[j + 1], local, sizeof(local));
      const I ctrl = vload_si(kExpandAll<W>.ctrl[b]);
      const I sh = vload_si(kExpandAll<W>.shift[b]);
      const I mask = vload_si(kExpandAll<W>.mask[b]);
      const int step = W / 8 * b;
#pragma GCC unroll 16
      for (int k = 0; k < K; ++k) {
        acc[k] = vfmadd(to_float(expand_rt(p + k * step, ctrl, sh, mask)), a, acc[k]);
      }
    } else if (b == 16) {
      acc_half<K, Masked>(p + 2 * c0, a, acc, tail);
    } else {
      acc_float<K, Masked>(p + 4 * c0, a, acc, tail);
    }
  }
  store_tile<K>(o, acc, corr, Masked, tail);
}

template <int K, bool Masked>
static void spmm_tile(const PackedSpmmArgs& s, int64_t eb, int64_t ee, int64_t c0, M tail,
                      float* o) {
  if (s.x.group != nullptr) {
    spmm_tile_mixed<K, Masked>(s, eb, ee, c0, tail, o);
    return;
  }
  // Widths <= 8 only mask the final store: one instantiation serves both cases.
  switch (s.x.group_bits[0]) {
#define QGNN_CASE(B)                                                \
  case B:                                                           \
    spmm_tile_uniform<B, K, false>(s, eb, ee, c0, tail, Masked, o); \
    break;
    QGNN_CASE(1)
    QGNN_CASE(2)
    QGNN_CASE(3)
    QGNN_CASE(4)
    QGNN_CASE(5)
    QGNN_CASE(6)
    QGNN_CASE(7)
    QGNN_CASE(8)
#undef QGNN_CASE
    case 16:
      spmm_tile_uniform<16, K, Masked>(s, eb, ee, c0, tail, Masked, o);
      break;
    case 32:
      spmm_tile_uniform<32, K, Masked>(s, eb, ee, c0, tail, Masked, o);
      break;
    default:
      break;
  }
}

template <bool Masked>
static void spmm_tile_any(int nv, const PackedSpmmArgs& s, int64_t eb, int64_t ee, int64_t c0,
                          M tail, float* o) {
  switch (nv) {
    case 1:
      spmm_tile<1, Masked>(s, eb, ee, c0, tail, o);
      break;
    case 2:
      spmm_tile<2, Masked>(s, eb, ee, c0, tail, o);
      break;
    case 3:
      spmm_tile<3, Masked>(s, eb, ee, c0, tail, o);
      break;
    case 4:
      spmm_tile<4, Masked>(s, eb, ee, c0, tail, o);
      break;
    case 5:
      spmm_tile<5, Masked>(s, eb, ee, c0, tail, o);
      break;
    case 6:
      spmm_tile<6, Masked>(s, eb, ee, c0, tail, o);
      break;
    case 7:
      spmm_tile<7, Masked>(s, eb, ee, c0, tail, o);
      break;
    case 8:
      spmm_tile<8, Masked>(s, eb, ee, c0, tail, o);
      break;
    default:
      break;
  }
}

static void spmm_rows(const PackedSpmmArgs& s, int64_t rb, int64_t re) {
  const int64_t f = s.x.cols;
  const int64_t nvec = (f + W - 1) / W;
  const int rem = static_cast<int>(f % W);
  const M tail = tail_mask(rem == 0 ? W : rem);
  constexpr int kMaxK = 8;
  for (int64_t i = rb; i < re; ++i) {
    const int64_t eb = s.indptr[i], ee = s.indptr[i + 1];
    float* orow = s.out + i * f;
    int64_t v = 0;
    for (; nvec - v > kMaxK; v += kMaxK) {
      spmm_tile<kMaxK, false>(s, eb, ee, v * W, tail, orow + v * W);
    }
    const int nv = static_cast<int>(nvec - v);
    if (rem != 0)
      spmm_tile_any<true>(nv, s, eb, ee, v * W, tail, orow + v * W);
    else
      spmm_tile_any<false>(nv, s, eb, ee, v * W, tail, orow + v * W);
  }
}

#undef QGNN_QUANT_BITS_SWITCH

static const Kernels kKernels = {minmax,      pack_row, pack_half, decode_row,
                                 dot_sources, fake_row, spmm_rows};

}  // namespace qgnn::quant_cpu::QGNN_QUANT_NS
