// Integer linear / SpMM / int4 row kernels for one path; included by int8_kernel.cpp once
// per path (no include guard). The includer defines
//   QGNN_INT8_NS      namespace of this copy (avx2, avx512, avx512_vnni),
//   QGNN_INT8_AVX512  0: AVX2 (the build baseline), 1: AVX-512F/VL/BW/DQ,
//   QGNN_INT8_VNNI    1: AVX-512 VNNI (vpdpbusd) for the linear map,
// and wraps the AVX-512 copies in `#pragma GCC target`; they run only after a CPU check.
//
// Linear: rows in blocks of kMR, each block copied once into an L1 buffer in the kernel's
// operand format (u8 = x + 128 for VNNI, int16 for vpmaddwd; int4 rows are unpacked into
// it), then kMR x kNR register tiles of int32 accumulators run over all of K (weights stream
// from L2) and are stored or requantized straight from registers.
// SpMM: per row, up to 8 int16 vectors accumulate the gathered rows and are flushed to int32
// every 256 edges (int8: 256 * 128 = 2^15) or 4096 edges (int4); int4 rows accumulate even
// and odd columns separately (nibbles sign-extended by shifts) and are interleaved at the
// flush. Loads cover whole vectors: a source row whose over-read would pass the end of x is
// copied to a local buffer first; lanes past the row's columns are never stored. Rows of at
// most 16 bytes take a narrow kernel (four edges per step; see spmm_narrow).
// Row requantization (requantize_rows): 64-bit products per lane, as in the fused epilogues.

namespace qgnn::quant_cpu::QGNN_INT8_NS {

#if QGNN_INT8_AVX512
constexpr int W = 16;  // int32 lanes per vector
using I = __m512i;
struct Tail {
  __mmask16 m;
  int n;
};
static inline Tail tail(int n) { return {static_cast<__mmask16>((1u << n) - 1u), n}; }
static inline I zero() { return _mm512_setzero_si512(); }
static inline I set1(int32_t v) { return _mm512_set1_epi32(v); }
static inline I set1_64(int64_t v) { return _mm512_set1_epi64(v); }
static inline I loadu(const void* p) { return _mm512_loadu_si512(p); }
static inline I load(const int32_t* p, Tail t) { return _mm512_maskz_loadu_epi32(t.m, p); }
static inline void store(int32_t* p, I v) { _mm512_storeu_si512(p, v); }
static inline void store(int32_t* p, I v, Tail t) { _mm512_mask_storeu_epi32(p, t.m, v); }
static inline I add(I a, I b) { return _mm512_add_epi32(a, b); }
static inline I mullo(I a, I b) { return _mm512_mullo_epi32(a, b); }
static inline I min32(I a, I b) { return _mm512_min_epi32(a, b); }
// Stores the low byte of each lane (values already in int8 range).
static inline void store_i8(int8_t* p, I v, Tail t) {
  if (t.n == W) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v));
  } else {
    _mm_mask_storeu_epi8(p, t.m, _mm512_cvtepi32_epi8(v));
  }
}
// Full vectors use a plain load: masked byte loads of data outside L1 measured 2x slower on
// Zen 5 (requantize_rows, 64 MB of int8 rows).
static inline I load_i8_as_i32(const int8_t* p, Tail t) {
  if (t.n == W) return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(t.m, p));
}

// Requantization of 64-bit products p (int8_ops.h): v = (p + 2^(s-1) - [p < 0]) >> s + zp.
// Per-lane constants: h = 2^(s-1), z = zp.
static inline I rq_round(I s) {
  const I one = set1_64(1);
  return _mm512_sllv_epi64(one, _mm512_sub_epi64(s, one));
}
static inline I rq_offset(I, int32_t zp) { return set1_64(zp); }
static inline I rq_shift(I p, I h, I s, I z) {
  const I t = _mm512_add_epi64(_mm512_add_epi64(p, h), _mm512_srai_epi64(p, 63));
  return _mm512_add_epi64(_mm512_srav_epi64(t, s), z);
}
static inline I clamp64(I v, I lo, I hi) { return _mm512_min_epi64(_mm512_max_epi64(v, lo), hi); }
static inline I mul_even(I a, I b) { return _mm512_mul_epi32(a, b); }
static inline I mul_even_u(I a, I b) { return _mm512_mul_epu32(a, b); }
static inline I srli64(I a, int n) { return _mm512_srli_epi64(a, static_cast<unsigned>(n)); }
static inline I slli64(I a, int n) { return _mm512_slli_epi64(a, static_cast<unsigned>(n)); }
static inline I add64(I a, I b) { return _mm512_add_epi64(a, b); }
static inline I and_(I a, I b) { return _mm512_and_si512(a, b); }
static inline I andnot(I a, I b) { return _mm512_andnot_si512(a, b); }
static inline I cmpgt32(I a, I b) { return _mm512_movm_epi32(_mm512_cmpgt_epi32_mask(a, b)); }
// Even int32 lanes from e (low dwords), odd lanes from the low dwords of o.
static inline I merge_even_odd(I e, I o) {
  return _mm512_mask_blend_epi32(0xAAAA, e, _mm512_slli_epi64(o, 32));
}

// int16 vectors of the SpMM: 32 lanes from 32 bytes.
constexpr int kL16 = 32;
static inline I h_load_i8(const uint8_t* p) {
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
static inline I h_load_u8(const uint8_t* p) {
  return _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
static inline I h_add(I a, I b) { return _mm512_add_epi16(a, b); }
static inline I h_lo_nibble(I u) { return _mm512_srai_epi16(_mm512_slli_epi16(u, 12), 12); }
static inline I h_hi_nibble(I u) { return _mm512_srai_epi16(_mm512_slli_epi16(u, 8), 12); }
// int16 lanes [0, 16) and [16, 32) as int32.
static inline I h_lo32(I h) { return _mm512_cvtepi16_epi32(_mm512_castsi512_si256(h)); }
static inline I h_hi32(I h) { return _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(h, 1)); }
// Interleaves int32 vectors of even (e) and odd (o) columns: out0 = e0 o0 .. e7 o7,
// out1 = e8 o8 .. e15 o15.
static inline void interleave32(I e, I o, I* out0, I* out1) {
  const I i0 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const I i1 = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  *out0 = _mm512_permutex2var_epi32(e, i0, o);
  *out1 = _mm512_permutex2var_epi32(e, i1, o);
}

#else  // AVX2

constexpr int W = 8;
using I = __m256i;
struct Tail {
  __m256i m;
  int n;
};
static inline Tail tail(int n) {
  alignas(32) static const int32_t kMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
  return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 8 - n)), n};
}
static inline I zero() { return _mm256_setzero_si256(); }
static inline I set1(int32_t v) { return _mm256_set1_epi32(v); }
static inline I set1_64(int64_t v) { return _mm256_set1_epi64x(v); }
static inline I loadu(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const I*>(p)); }
static inline I load(const int32_t* p, Tail t) {
  return _mm256_maskload_epi32(reinterpret_cast<const int*>(p), t.m);
}
static inline void store(int32_t* p, I v) { _mm256_storeu_si256(reinterpret_cast<I*>(p), v); }
static inline void store(int32_t* p, I v, Tail t) {
  _mm256_maskstore_epi32(reinterpret_cast<int*>(p), t.m, v);
}
static inline I add(I a, I b) { return _mm256_add_epi32(a, b); }
static inline I mullo(I a, I b) { return _mm256_mullo_epi32(a, b); }
static inline I min32(I a, I b) { return _mm256_min_epi32(a, b); }
static inline void store_i8(int8_t* p, I v, Tail t) {
  const __m256i h = _mm256_packs_epi32(v, v);
  const __m256i w = _mm256_packs_epi16(h, h);  // bytes 0-3 of each 128-bit lane
  const __m128i b = _mm_unpacklo_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
  if (t.n == W) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), b);
  } else {
    alignas(16) int8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b);
    std::memcpy(p, tmp, static_cast<size_t>(t.n));
  }
}
static inline I load_i8_as_i32(const int8_t* p, Tail t) {
  int64_t v = 0;
  std::memcpy(&v, p, static_cast<size_t>(t.n));
  return _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(v));
}

// See the AVX-512 version. AVX2 has no 64-bit arithmetic shift: with |p| < 2^62,
// p + 2^62 + 2^(s-1) - [p < 0] is non-negative, and its logical shift exceeds the arithmetic
// shift of p + 2^(s-1) - [p < 0] by exactly 2^(62-s). So h = 2^62 + 2^(s-1) and
// z = zp - 2^(62-s).
static inline I rq_round(I s) {
  const I one = set1_64(1);
  return _mm256_add_epi64(set1_64(int64_t{1} << 62),
                          _mm256_sllv_epi64(one, _mm256_sub_epi64(s, one)));
}
static inline I rq_offset(I s, int32_t zp) {
  return _mm256_sub_epi64(set1_64(zp), _mm256_srlv_epi64(set1_64(int64_t{1} << 62), s));
}
static inline I rq_shift(I p, I h, I s, I z) {
  const I neg = _mm256_cmpgt_epi64(_mm256_setzero_si256(), p);
  const I t = _mm256_add_epi64(_mm256_add_epi64(p, h), neg);
  return _mm256_add_epi64(_mm256_srlv_epi64(t, s), z);
}
static inline I clamp64(I v, I lo, I hi) {
  v = _mm256_blendv_epi8(v, lo, _mm256_cmpgt_epi64(lo, v));
  return _mm256_blendv_epi8(v, hi, _mm256_cmpgt_epi64(v, hi));
}
static inline I mul_even(I a, I b) { return _mm256_mul_epi32(a, b); }
static inline I mul_even_u(I a, I b) { return _mm256_mul_epu32(a, b); }
static inline I srli64(I a, int n) { return _mm256_srli_epi64(a, n); }
static inline I slli64(I a, int n) { return _mm256_slli_epi64(a, n); }
static inline I add64(I a, I b) { return _mm256_add_epi64(a, b); }
static inline I and_(I a, I b) { return _mm256_and_si256(a, b); }
static inline I andnot(I a, I b) { return _mm256_andnot_si256(a, b); }
static inline I cmpgt32(I a, I b) { return _mm256_cmpgt_epi32(a, b); }
static inline I merge_even_odd(I e, I o) {
  return _mm256_blend_epi32(e, _mm256_slli_epi64(o, 32), 0xAA);
}

constexpr int kL16 = 16;
static inline I h_load_i8(const uint8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
static inline I h_load_u8(const uint8_t* p) {
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
static inline I h_add(I a, I b) { return _mm256_add_epi16(a, b); }
static inline I h_lo_nibble(I u) { return _mm256_srai_epi16(_mm256_slli_epi16(u, 12), 12); }
static inline I h_hi_nibble(I u) { return _mm256_srai_epi16(_mm256_slli_epi16(u, 8), 12); }
static inline I h_lo32(I h) { return _mm256_cvtepi16_epi32(_mm256_castsi256_si128(h)); }
static inline I h_hi32(I h) { return _mm256_cvtepi16_epi32(_mm256_extracti128_si256(h, 1)); }
static inline void interleave32(I e, I o, I* out0, I* out1) {
  const I lo = _mm256_unpacklo_epi32(e, o);  // e0 o0 e1 o1 | e4 o4 e5 o5
  const I hi = _mm256_unpackhi_epi32(e, o);  // e2 o2 e3 o3 | e6 o6 e7 o7
  *out0 = _mm256_permute2x128_si256(lo, hi, 0x20);
  *out1 = _mm256_permute2x128_si256(lo, hi, 0x31);
}
#endif

// ---------------------------------------------------------------------------------------
// Requantization (int8_ops.h): per-lane multipliers (m, s), s = right shift in [1, 62].

// Per-lane constants of W multipliers (m, s), split into even and odd lanes (64-bit).
struct Rq {
  I m, mo;  // m: even lanes in the low dwords (what mul_epi32 reads); mo: odd lanes
  I se, so, he, ho, ze, zo;
};

static inline Rq rq_prepare(I m, I s, int32_t zp) {
  Rq q;
  q.m = m;
  q.mo = srli64(m, 32);
  q.se = and_(s, set1_64(0xFFFFFFFFLL));
  q.so = srli64(s, 32);
  q.he = rq_round(q.se);
  q.ho = rq_round(q.so);
  q.ze = rq_offset(q.se, zp);
  q.zo = rq_offset(q.so, zp);
  return q;
}

// The same constants for one multiplier (m, s) shared by all lanes (a row's), computed in
// scalar registers.
static inline Rq rq_prepare_row(int32_t m, int32_t s, int32_t zp) {
  Rq q;
  q.m = q.mo = set1(m);  // m in every dword, so in the low dword of each 64-bit lane
  q.se = q.so = set1_64(s);
#if QGNN_INT8_AVX512
  q.he = q.ho = set1_64(int64_t{1} << (s - 1));
  q.ze = q.zo = set1_64(zp);
#else
  q.he = q.ho = set1_64((int64_t{1} << 62) + (int64_t{1} << (s - 1)));
  q.ze = q.zo = set1_64(int64_t{zp} - (int64_t{1} << (62 - s)));
#endif
  return q;
}

struct RqBounds {
  I lo, hi;  // 64-bit lanes
  explicit RqBounds(const RequantView& r) : lo(set1_64(r.lo)), hi(set1_64(r.hi)) {}
};

// clamp(round(acc * m / 2^s) + zp, lo, hi) lane by lane.
static inline I requant(I acc, const Rq& q, const RqBounds& b) {
  const I ve = rq_shift(mul_even(acc, q.m), q.he, q.se, q.ze);
  const I vo = rq_shift(mul_even(srli64(acc, 32), q.mo), q.ho, q.so, q.zo);
  return merge_even_odd(clamp64(ve, b.lo, b.hi), clamp64(vo, b.lo, b.hi));
}

// Per-lane combine_ref of a row multiplier (mr, sr) with column multipliers (mc, sc).
static inline void combine(I mc, I sc, int32_t mr, int32_t sr, I* m, I* s) {
  const I r = set1(mr);
  const I half = set1_64(int64_t{1} << 30);
  const I me = srli64(add64(mul_even_u(mc, r), half), 31);
  const I mo = srli64(add64(mul_even_u(srli64(mc, 32), r), half), 31);
  I st = add(sc, set1(sr - 31));
  const I z = cmpgt32(st, set1(62));
  *m = andnot(z, merge_even_odd(me, mo));
  *s = min32(st, set1(62));
}

// ---------------------------------------------------------------------------------------
// Int4 rows (scalar tails; 32 values per step).

static inline bool pack_int4_row(const int8_t* q, int64_t n, uint8_t* out) {
  const __m128i nib = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  const __m128i high = _mm_set1_epi8(static_cast<char>(0xF0)), mul = _mm_set1_epi16(0x1001);
  __m128i bad = _mm_setzero_si128();
  int64_t t = 0;
  for (; t + 32 <= n; t += 32) {
    const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + t));
    const __m128i x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + t + 16));
    // x in [-8, 7] <=> (x + 8) mod 256 < 16.
    bad = _mm_or_si128(bad, _mm_and_si128(_mm_add_epi8(x0, eight), high));
    bad = _mm_or_si128(bad, _mm_and_si128(_mm_add_epi8(x1, eight), high));
    // Byte pairs (c0, c1) -> c0 + 16 c1 <= 255.
    const __m128i p0 = _mm_maddubs_epi16(_mm_and_si128(x0, nib), mul);
    const __m128i p1 = _mm_maddubs_epi16(_mm_and_si128(x1, nib), mul);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + t / 2), _mm_packus_epi16(p0, p1));
  }
  bool ok = _mm_testz_si128(bad, bad) != 0;
  for (; t < n; t += 2) {
    const int a = q[t], b = t + 1 < n ? q[t + 1] : 0;
    ok = ok && a >= -8 && a <= 7 && b >= -8 && b <= 7;
    out[t / 2] = static_cast<uint8_t>((a & 0x0F) | ((b & 0x0F) << 4));
  }
  return ok;
}

// 32 int4 values from 16 packed bytes as two int8 vectors (values 0-15 and 16-31).
static inline void unpack32(const uint8_t* p, __m128i* v0, __m128i* v1) {
  const __m128i nib = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  __m128i lo = _mm_and_si128(b, nib);
  __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), nib);
  lo = _mm_sub_epi8(_mm_xor_si128(lo, eight), eight);  // sign-extend the nibble
  hi = _mm_sub_epi8(_mm_xor_si128(hi, eight), eight);
  *v0 = _mm_unpacklo_epi8(lo, hi);
  *v1 = _mm_unpackhi_epi8(lo, hi);
}

static inline int nibble_at(const uint8_t* p, int64_t t) {
  const int v = (t & 1) != 0 ? p[t / 2] >> 4 : p[t / 2] & 0x0F;
  return (v ^ 8) - 8;
}

static inline void unpack_int4_row(const uint8_t* p, int64_t n, int8_t* out) {
  int64_t t = 0;
  for (; t + 32 <= n; t += 32) {
    __m128i v0, v1;
    unpack32(p + t / 2, &v0, &v1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + t), v0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + t + 16), v1);
  }
  for (; t < n; ++t) out[t] = static_cast<int8_t>(nibble_at(p, t));
}

// ---------------------------------------------------------------------------------------
// Linear.

#if QGNN_INT8_VNNI
constexpr int kG = 4;  // k values per 32-bit lane
using AT = uint8_t;    // x + 128
using WT = int8_t;
constexpr int kMR = 6, kNR = 4;
static inline I dot(I acc, I a, I w) { return _mm512_dpbusd_epi32(acc, a, w); }
static inline const WT* weights(const LinearArgs& a) { return a.w4; }
#elif QGNN_INT8_AVX512
constexpr int kG = 2;
using AT = int16_t;
using WT = int16_t;
constexpr int kMR = 4, kNR = 4;  // 6 x 4 spills: vpmaddwd needs a temporary per product
static inline I dot(I acc, I a, I w) { return _mm512_add_epi32(acc, _mm512_madd_epi16(a, w)); }
static inline const WT* weights(const LinearArgs& a) { return a.w2; }
#else
constexpr int kG = 2;
using AT = int16_t;
using WT = int16_t;
constexpr int kMR = 4, kNR = 2;
static inline I dot(I acc, I a, I w) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, w)); }
static inline const WT* weights(const LinearArgs& a) { return a.w2; }
#endif

static inline I bcast(const AT* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return set1(v);
}

// One row of K int8 values in the kernel's operand format, padded to kpad (a multiple of
// kG) with the code of 0 (the padded weights are 0 as well).
static inline void pack_a_row(const int8_t* x, int64_t k, int64_t kpad, AT* out) {
  int64_t t = 0;
#if QGNN_INT8_VNNI
  const I flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (; t + 64 <= k; t += 64) _mm512_storeu_si512(out + t, _mm512_xor_si512(loadu(x + t), flip));
  if (t < k) {
    const __mmask64 m = (~uint64_t{0}) >> (64 - (k - t));
    _mm512_mask_storeu_epi8(out + t, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + t), flip));
    t = k;
  }
  for (; t < kpad; ++t) out[t] = 0x80;
#elif QGNN_INT8_AVX512
  for (; t + 32 <= k; t += 32) {
    _mm512_storeu_si512(out + t, h_load_i8(reinterpret_cast<const uint8_t*>(x + t)));
  }
  if (t < k) {
    const __mmask32 m = (~uint32_t{0}) >> (32 - (k - t));
    _mm512_mask_storeu_epi16(out + t, m, _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, x + t)));
    t = k;
  }
  for (; t < kpad; ++t) out[t] = 0;
#else
  for (; t + 16 <= k; t += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + t),
                        h_load_i8(reinterpret_cast<const uint8_t*>(x + t)));
  }
  for (; t < k; ++t) out[t] = x[t];
  for (; t < kpad; ++t) out[t] = 0;
#endif
}

// The same from an int4-packed row.
static inline void pack_a_row4(const uint8_t* p, int64_t k, int64_t kpad, AT* out) {
  int64_t t = 0;
  for (; t + 32 <= k; t += 32) {
    __m128i v0, v1;
    unpack32(p + t / 2, &v0, &v1);
#if QGNN_INT8_VNNI
    const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + t), _mm_xor_si128(v0, flip));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + t + 16), _mm_xor_si128(v1, flip));
#else
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + t), _mm256_cvtepi8_epi16(v0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + t + 16), _mm256_cvtepi8_epi16(v1));
#endif
  }
  constexpr int kZero = kG == 4 ? 128 : 0;  // the operand code of x = 0
  for (; t < k; ++t) out[t] = static_cast<AT>(nibble_at(p, t) + kZero);
  for (; t < kpad; ++t) out[t] = static_cast<AT>(kZero);
}

// Epilogue modes: 0 = store int32, 1 = requantize with column multipliers, 2 = with
// combine(row, column) multipliers.
template <int MR, int NR, int Mode>
static void linear_tile(const LinearArgs& a, const AT* __restrict ab, int64_t lda, int64_t kg,
                        int64_t r0, int64_t c0) {
  // Every loop over r and v is unrolled so that acc stays in registers.
  I acc[MR][NR];
#pragma GCC unroll 8
  for (int v = 0; v < NR; ++v) {
    const I init = kG == 4 ? loadu(a.comp + c0 + v * W) : zero();
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][v] = init;
  }
  const WT* __restrict wp = weights(a) + c0 * kG;
  const int64_t wstride = a.o16 * kG;
  for (int64_t k = 0; k < kg; ++k, wp += wstride) {
    I wv[NR];
#pragma GCC unroll 8
    for (int v = 0; v < NR; ++v) wv[v] = loadu(wp + v * W * kG);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const I av = bcast(ab + r * lda + k * kG);
#pragma GCC unroll 8
      for (int v = 0; v < NR; ++v) acc[r][v] = dot(acc[r][v], av, wv[v]);
    }
  }
  const int64_t o = a.o;
#pragma GCC unroll 8
  for (int v = 0; v < NR; ++v) {
    const int64_t c = c0 + v * W;
    const Tail tl = tail(static_cast<int>(std::min<int64_t>(W, o - c)));
    if constexpr (Mode == 0) {
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        int32_t* d = a.out_s32 + (r0 + r) * o + c;
        if (tl.n == W) {
          store(d, acc[r][v]);
        } else {
          store(d, acc[r][v], tl);
        }
      }
    } else {
      const RqBounds bounds(a.rq);
      const I mc = loadu(a.rq.col_m + c), sc = loadu(a.rq.col_s + c);
      const I bias = a.rq.bias != nullptr ? loadu(a.rq.bias + c) : zero();
      Rq q;
      if constexpr (Mode == 1) q = rq_prepare(mc, sc, a.rq.zero_point);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        if constexpr (Mode == 2) {
          I m, s;
          combine(mc, sc, a.rq.row_m[r0 + r], a.rq.row_s[r0 + r], &m, &s);
          q = rq_prepare(m, s, a.rq.zero_point);
        }
        store_i8(a.out_q + (r0 + r) * o + c, requant(add(acc[r][v], bias), q, bounds), tl);
      }
    }
  }
}

using TileFn = void (*)(const LinearArgs&, const AT*, int64_t, int64_t, int64_t, int64_t);

template <int Mode, size_t... Idx>
constexpr std::array<TileFn, sizeof...(Idx)> make_tiles(std::index_sequence<Idx...>) {
  return {&linear_tile<static_cast<int>(Idx / kNR) + 1, static_cast<int>(Idx % kNR) + 1, Mode>...};
}
// kTiles[mode][(mr - 1) * kNR + nr - 1]
static constexpr std::array<std::array<TileFn, kMR * kNR>, 3> kTiles = {
    make_tiles<0>(std::make_index_sequence<kMR * kNR>{}),
    make_tiles<1>(std::make_index_sequence<kMR * kNR>{}),
    make_tiles<2>(std::make_index_sequence<kMR * kNR>{})};

static void linear_rows(const LinearArgs& a, int64_t rb, int64_t re) {
  const int64_t kg = (a.k + kG - 1) / kG, lda = kg * kG;
  std::vector<AT> abuf(static_cast<size_t>(kMR * lda));
  const int mode = a.out_s32 != nullptr ? 0 : (a.rq.row_m != nullptr ? 2 : 1);
  const auto& tiles = kTiles[static_cast<size_t>(mode)];
  for (int64_t r0 = rb; r0 < re; r0 += kMR) {
    const int mr = static_cast<int>(std::min<int64_t>(kMR, re - r0));
    for (int r = 0; r < mr; ++r) {
      const uint8_t* src = a.x + (r0 + r) * a.ldx;
      if (a.x4) {
        pack_a_row4(src, a.k, lda, abuf.data() + r * lda);
      } else {
        pack_a_row(reinterpret_cast<const int8_t*>(src), a.k, lda, abuf.data() + r * lda);
      }
    }
    for (int64_t c0 = 0; c0 < a.o; c0 += kNR * W) {
      const int nr = static_cast<int>(std::min<int64_t>(kNR, (a.o - c0 + W - 1) / W));
      tiles[static_cast<size_t>((mr - 1) * kNR + nr - 1)](a, abuf.data(), lda, kg, r0, c0);
    }
  }
}

// ---------------------------------------------------------------------------------------
// SpMM.

constexpr int kPassCols = 8 * kL16;  // columns per pass over a row's edges
// Edges ahead whose source rows are prefetched: rows are scattered over x (larger than the
// caches on big graphs), so a miss costs ~100 ns against ~3 ns per edge; 96 measured best on
// a 20M-edge power-law graph (32: 1.7x slower, 16: 2.2x).
constexpr int64_t kPrefetch = 96;
// Software prefetch only when x is larger than this (bytes): smaller matrices stay in L2 / L3
// where out-of-order execution hides the latency and the prefetch is pure overhead (measured
// at 1M nodes / 20M edges and Amazon Computers for F = 16..256: off below 4 MB, on above).
constexpr int64_t kPrefetchAbove = int64_t{4} << 20;

// Columns [c0, c0 + nc) of rows [rb, re); NV int16 vectors of kL16 bytes per source row.
template <int NV, bool X4, bool Prefetch>
static void spmm_pass(const SpmmArgs& a, int64_t rb, int64_t re, int64_t c0, int64_t nc) {
  constexpr int kAcc = X4 ? 2 * NV : NV;
  constexpr int64_t kFlush = X4 ? 4096 : 256;
  constexpr int kRead = NV * kL16;  // bytes loaded per source row
  const int64_t b0 = X4 ? c0 / 2 : c0;
  const int64_t nb = X4 ? (nc + 1) / 2 : nc;  // bytes of the pass
  const int64_t ldx = a.ldx;
  const uint8_t* __restrict x = a.x + b0;
  const int64_t* __restrict idx = a.indices;
  // Rows j < safe may be read kRead bytes from b0; later rows go through `pad`.
  const int64_t avail = a.num_cols * ldx - b0 - kRead;
  const int64_t safe = avail < 0 ? 0 : std::min(a.num_cols, avail / ldx + 1);
  alignas(64) uint8_t pad[kRead];
  alignas(64) int32_t sum[kPassCols];
  alignas(64) int8_t self[kPassCols];
  const int64_t e_last = a.indptr[re] - 1;
  const RqBounds bounds(a.rq);

  for (int64_t i = rb; i < re; ++i) {
    int64_t e = a.indptr[i];
    const int64_t ee = a.indptr[i + 1];
    bool first = true;
    for (;;) {
      I acc[kAcc];
      for (int v = 0; v < kAcc; ++v) acc[v] = zero();
      const int64_t se = std::min(ee, e + kFlush);
      for (; e < se; ++e) {
        if constexpr (Prefetch) {
          // The first and last byte of an upcoming row (and the lines between, wide rows).
          const char* pf =
              reinterpret_cast<const char*>(x + idx[std::min(e + kPrefetch, e_last)] * ldx);
          _mm_prefetch(pf, _MM_HINT_T0);
          _mm_prefetch(pf + nb - 1, _MM_HINT_T0);
          if constexpr (kRead > 128) {
            for (int64_t off = 64; off < nb - 1; off += 64) _mm_prefetch(pf + off, _MM_HINT_T0);
          }
        }
        const int64_t j = idx[e];
        const uint8_t* p = x + j * ldx;
        if (j >= safe) {
          std::memcpy(pad, p, static_cast<size_t>(nb));
          p = pad;
        }
        for (int v = 0; v < NV; ++v) {
          if constexpr (X4) {
            const I u = h_load_u8(p + v * kL16);
            acc[2 * v] = h_add(acc[2 * v], h_lo_nibble(u));
            acc[2 * v + 1] = h_add(acc[2 * v + 1], h_hi_nibble(u));
          } else {
            acc[v] = h_add(acc[v], h_load_i8(p + v * kL16));
          }
        }
      }
      // Flush: int16 -> int32 in column order.
      for (int v = 0; v < NV; ++v) {
        I s[4];
        int ns = 2;
        if constexpr (X4) {
          interleave32(h_lo32(acc[2 * v]), h_lo32(acc[2 * v + 1]), &s[0], &s[1]);
          interleave32(h_hi32(acc[2 * v]), h_hi32(acc[2 * v + 1]), &s[2], &s[3]);
          ns = 4;
        } else {
          s[0] = h_lo32(acc[v]);
          s[1] = h_hi32(acc[v]);
        }
        for (int h = 0; h < ns; ++h) {
          int32_t* d = sum + (v * ns + h) * W;
          store(d, first ? s[h] : add(loadu(d), s[h]));
        }
      }
      first = false;
      if (e >= ee) break;
    }
    // Epilogue: self term, then store or requantize.
    if (a.out_s32 != nullptr) {
      int32_t* o = a.out_s32 + i * a.f + c0;
      for (int64_t t = 0; t < nc; t += W) {
        const I s = loadu(sum + t);
        if (t + W <= nc) {
          store(o + t, s);
        } else {
          store(o + t, s, tail(static_cast<int>(nc - t)));
        }
      }
    } else {
      const int32_t w_self = a.self_weight;
      if (w_self != 0) {
        const uint8_t* xi = a.x + i * ldx + b0;
        if constexpr (X4) {
          unpack_int4_row(xi, nc, self);
        } else {
          std::memcpy(self, xi, static_cast<size_t>(nc));
        }
      }
      const Rq q = rq_prepare_row(a.rq.row_m[i], a.rq.row_s[i], a.rq.zero_point);
      const I ws = set1(w_self);
      int8_t* o = a.out_q + i * a.f + c0;
      for (int64_t t = 0; t < nc; t += W) {
        const Tail tl = tail(static_cast<int>(std::min<int64_t>(W, nc - t)));
        I v = loadu(sum + t);
        if (w_self != 0) v = add(v, mullo(ws, load_i8_as_i32(self + t, tl)));
        store_i8(o + t, requant(v, q, bounds), tl);
      }
    }
  }
}

// Narrow rows (at most 16 bytes: int8 F <= 16, int4 F <= 32 on AVX-512), where the per-edge
// work (index load, address, gather, loop) dominates: one 16-byte load per source row (on
// AVX-512 two source rows per 32-lane int16 vector, low and high half), four edges per step
// with one vector compare of their indices against `safe` (rows whose 16-byte read would pass
// the end of x go through `pad`), and the last 0-3 edges of a chunk in one branch-free step
// that reads a zero row in place of the missing edges (their count is irregular: branching
// on it cost 0.29 against 0.22 ms on Amazon Computers at F = 16). Plain loads, not masked
// ones (see load_i8_as_i32). Each int16 lane of the (folded) sums adds at most kFlush edges.
constexpr int64_t kNarrowBytes = 16;
alignas(16) static const uint8_t kZeroRow[kNarrowBytes] = {};

static inline __m128i load_row16(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

#if QGNN_INT8_AVX512
constexpr int kNarrowOut = 2;  // int32 vectors of column sums (32 columns)

// Adds the 16-byte rows p0 and p1 to the int16 sums: p0 in the low half of a (and b), p1 in
// the high half; int4: even columns in a, odd columns in b.
template <bool X4>
static inline void narrow_add2(I* a, I* b, const uint8_t* p0, const uint8_t* p1) {
  const __m256i v =
      _mm256_inserti128_si256(_mm256_castsi128_si256(load_row16(p0)), load_row16(p1), 1);
  if constexpr (X4) {
    const I u = _mm512_cvtepu8_epi16(v);
    *a = h_add(*a, h_lo_nibble(u));
    *b = h_add(*b, h_hi_nibble(u));
  } else {
    *a = h_add(*a, _mm512_cvtepi8_epi16(v));
  }
}

template <bool X4>
static inline void narrow_add1(I* a, I* b, const uint8_t* p) {
  narrow_add2<X4>(a, b, p, kZeroRow);
}

// Low + high half of int16 sums, widened to int32.
static inline I narrow_fold(I h) {
  return _mm512_cvtepi16_epi32(
      _mm256_add_epi16(_mm512_castsi512_si256(h), _mm512_extracti64x4_epi64(h, 1)));
}

// Adds the sums to the int32 column sums t[v] (columns [16 v, 16 v + 16)).
template <bool X4>
static inline void narrow_flush(I a, I b, I* t) {
  if constexpr (X4) {
    I c0, c1;
    interleave32(narrow_fold(a), narrow_fold(b), &c0, &c1);
    t[0] = add(t[0], c0);
    t[1] = add(t[1], c1);
  } else {
    t[0] = add(t[0], narrow_fold(a));
  }
}

// True when one of the 4 indices is >= safe.
static inline bool any_ge(__m256i j, __m256i safe) { return _mm256_cmpge_epi64_mask(j, safe) != 0; }
#else
// int8 rows only: on AVX2 the general pass is as fast for int4 rows (nibble shifts dominate).
constexpr int kNarrowOut = 2;  // 8 columns each

template <bool X4>
static inline void narrow_add1(I* a, I*, const uint8_t* p) {
  static_assert(!X4, "AVX2 narrow rows are int8");
  *a = h_add(*a, _mm256_cvtepi8_epi16(load_row16(p)));
}

template <bool X4>
static inline void narrow_add2(I* a, I* b, const uint8_t* p0, const uint8_t* p1) {
  narrow_add1<X4>(a, b, p0);
  narrow_add1<X4>(a, b, p1);
}

template <bool X4>
static inline void narrow_flush(I a, I, I* t) {
  t[0] = add(t[0], h_lo32(a));
  t[1] = add(t[1], h_hi32(a));
}

static inline bool any_ge(__m256i j, __m256i safe) {
  const __m256i ge = _mm256_cmpgt_epi64(_mm256_add_epi64(j, _mm256_set1_epi64x(1)), safe);
  return _mm256_movemask_pd(_mm256_castsi256_pd(ge)) != 0;
}
#endif

// p when c, else the zero row; computed with a mask (compilers turn a ?: on an irregular
// condition into a branch).
static inline const uint8_t* select_row(bool c, const uint8_t* p) {
  const uintptr_t m = uintptr_t{0} - static_cast<uintptr_t>(c);
  return reinterpret_cast<const uint8_t*>((reinterpret_cast<uintptr_t>(p) & m) |
                                          (reinterpret_cast<uintptr_t>(kZeroRow) & ~m));
}

// Prefetches the source row of edge min(e, last) (and its last byte's line when `end`).
static inline void prefetch_row(const uint8_t* x, const int64_t* idx, int64_t e, int64_t last,
                                int64_t ldx, bool end) {
  const char* p = reinterpret_cast<const char*>(x + idx[std::min(e, last)] * ldx);
  _mm_prefetch(p, _MM_HINT_T0);
  if (end) _mm_prefetch(p + ldx - 1, _MM_HINT_T0);
}

template <bool X4, bool Check, bool Prefetch>
static void spmm_narrow(const SpmmArgs& a, int64_t rb, int64_t re) {
  constexpr int64_t kFlush = X4 ? 4096 : 256;
  const int64_t ldx = a.ldx, f = a.f;
  const uint8_t* __restrict x = a.x;
  const int64_t* __restrict idx = a.indices;
  const int64_t avail = a.num_cols * ldx - kNarrowBytes;
  const int64_t safe = avail < 0 ? 0 : std::min(a.num_cols, avail / ldx + 1);
  const __m256i safe_v = _mm256_set1_epi64x(safe);
  alignas(16) uint8_t pad[4][kNarrowBytes] = {};
  alignas(64) int8_t self[kNarrowOut * W];
  const int64_t e_last = a.indptr[re] - 1;
  // Indices readable at any e <= e_last + 1 (clamped), also when rows [rb, re) have no edges.
  static const int64_t kNoIndex = 0;
  const int64_t* idx_c = e_last >= 0 ? idx : &kNoIndex;
  const int64_t last_c = std::max<int64_t>(e_last, 0);
  // A row straddles two cache lines unless rows tile the lines exactly.
  const bool pf_end = 64 % ldx != 0 || reinterpret_cast<uintptr_t>(x) % 64 != 0;
  const RqBounds bounds(a.rq);

  // Source row of edge e (k: its slot in the step, for `pad`).
  auto row = [&](int64_t e, int k) {
    const int64_t j = idx[e];
    const uint8_t* p = x + j * ldx;
    if (Check && j >= safe) {
      std::memcpy(pad[k], p, static_cast<size_t>(ldx));
      p = pad[k];
    }
    return p;
  };

  for (int64_t i = rb; i < re; ++i) {
    int64_t e = a.indptr[i];
    const int64_t ee = a.indptr[i + 1];
    I tot[kNarrowOut];
    for (int v = 0; v < kNarrowOut; ++v) tot[v] = zero();
    for (;;) {
      const int64_t se = std::min(ee, e + kFlush);
      I acc = zero(), acc_o = zero();
      for (; e + 4 <= se; e += 4) {
        if constexpr (Prefetch) {
          for (int k = 0; k < 4; ++k)
            prefetch_row(x, idx_c, e + kPrefetch + k, last_c, ldx, pf_end);
        }
        if constexpr (Check) {
          const __m256i jv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + e));
          if (any_ge(jv, safe_v)) {
            narrow_add2<X4>(&acc, &acc_o, row(e, 0), row(e + 1, 1));
            narrow_add2<X4>(&acc, &acc_o, row(e + 2, 2), row(e + 3, 3));
            continue;
          }
        }
        narrow_add2<X4>(&acc, &acc_o, x + idx[e] * ldx, x + idx[e + 1] * ldx);
        narrow_add2<X4>(&acc, &acc_o, x + idx[e + 2] * ldx, x + idx[e + 3] * ldx);
      }
      // The last n = se - e < 4 edges; missing edges read a zero row (selected, not
      // branched on: n is irregular).
      const int64_t n = se - e;
      if constexpr (Prefetch) {
        for (int k = 0; k < 3; ++k) prefetch_row(x, idx_c, e + kPrefetch + k, last_c, ldx, pf_end);
      }
      const int64_t j0 = idx_c[std::min(e, last_c)], j1 = idx_c[std::min(e + 1, last_c)];
      const int64_t j2 = idx_c[std::min(e + 2, last_c)];
      if (Check &&
          (((n > 0) & (j0 >= safe)) | ((n > 1) & (j1 >= safe)) | ((n > 2) & (j2 >= safe)))) {
        for (int64_t k = 0; k < n; ++k) {
          narrow_add1<X4>(&acc, &acc_o, row(e + k, 0));
        }
      } else {
        const uint8_t* p0 = select_row(n > 0, x + j0 * ldx);
        const uint8_t* p1 = select_row(n > 1, x + j1 * ldx);
        const uint8_t* p2 = select_row(n > 2, x + j2 * ldx);
        narrow_add2<X4>(&acc, &acc_o, p0, p1);
        narrow_add1<X4>(&acc, &acc_o, p2);
      }
      e = se;
      narrow_flush<X4>(acc, acc_o, tot);
      if (e >= ee) break;
    }

    const int nv = static_cast<int>((f + W - 1) / W);
    if (a.out_s32 != nullptr) {
      int32_t* o = a.out_s32 + i * f;
      for (int v = 0; v < nv; ++v) {
        const int n = static_cast<int>(std::min<int64_t>(W, f - v * W));
        if (n == W) {
          store(o + v * W, tot[v]);
        } else {
          store(o + v * W, tot[v], tail(n));
        }
      }
    } else {
      const int32_t w_self = a.self_weight;
      const uint8_t* xi = x + i * ldx;
      if (w_self != 0) {
        if constexpr (X4) {
          unpack_int4_row(xi, f, self);
        } else {
          std::memcpy(self, xi, static_cast<size_t>(f));
        }
      }
      const Rq q = rq_prepare_row(a.rq.row_m[i], a.rq.row_s[i], a.rq.zero_point);
      const I ws = set1(w_self);
      int8_t* o = a.out_q + i * f;
      for (int v = 0; v < nv; ++v) {
        const Tail tl = tail(static_cast<int>(std::min<int64_t>(W, f - v * W)));
        I t = tot[v];
        if (w_self != 0) t = add(t, mullo(ws, load_i8_as_i32(self + v * W, tl)));
        store_i8(o + v * W, requant(t, q, bounds), tl);
      }
    }
  }
}

using NarrowFn = void (*)(const SpmmArgs&, int64_t, int64_t);
// kNarrow[x4][check][prefetch]
static constexpr NarrowFn kNarrow[2][2][2] = {
    {{&spmm_narrow<false, false, false>, &spmm_narrow<false, false, true>},
     {&spmm_narrow<false, true, false>, &spmm_narrow<false, true, true>}},
#if QGNN_INT8_AVX512
    {{&spmm_narrow<true, false, false>, &spmm_narrow<true, false, true>},
     {&spmm_narrow<true, true, false>, &spmm_narrow<true, true, true>}}};
constexpr bool kNarrowInt4 = true;
#else
    {{nullptr, nullptr}, {nullptr, nullptr}}};
constexpr bool kNarrowInt4 = false;
#endif

using PassFn = void (*)(const SpmmArgs&, int64_t, int64_t, int64_t, int64_t);

template <bool X4, bool Prefetch, size_t... Idx>
constexpr std::array<PassFn, sizeof...(Idx)> make_passes(std::index_sequence<Idx...>) {
  return {&spmm_pass<static_cast<int>(Idx) + 1, X4, Prefetch>...};
}
// kPasses8[prefetch][nv - 1] (int8 rows), kPasses4 (int4 rows).
static constexpr std::array<std::array<PassFn, 8>, 2> kPasses8 = {
    make_passes<false, false>(std::make_index_sequence<8>{}),
    make_passes<false, true>(std::make_index_sequence<8>{})};
static constexpr std::array<std::array<PassFn, 4>, 2> kPasses4 = {
    make_passes<true, false>(std::make_index_sequence<4>{}),
    make_passes<true, true>(std::make_index_sequence<4>{})};

static void spmm_rows(const SpmmArgs& a, int64_t rb, int64_t re) {
  const size_t pf = a.num_cols * a.ldx > kPrefetchAbove ? 1 : 0;
  if (a.ldx <= kNarrowBytes && (kNarrowInt4 || !a.x4)) {
    const int64_t avail = a.num_cols * a.ldx - kNarrowBytes;
    const bool check = avail < 0 || avail / a.ldx + 1 < a.num_cols;
    kNarrow[a.x4 ? 1 : 0][check ? 1 : 0][pf](a, rb, re);
    return;
  }
  for (int64_t c0 = 0; c0 < a.f; c0 += kPassCols) {
    const int64_t nc = std::min<int64_t>(kPassCols, a.f - c0);
    if (a.x4) {
      kPasses4[pf][static_cast<size_t>((nc + 2 * kL16 - 1) / (2 * kL16) - 1)](a, rb, re, c0, nc);
    } else {
      kPasses8[pf][static_cast<size_t>((nc + kL16 - 1) / kL16 - 1)](a, rb, re, c0, nc);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Row requantization. With r = bias + self_weight * self (int32: the front-end checks
// 128 |self_weight| + max|bias| < 2^31), the product v * m of int8_ops.h is computed as
// ((acc * m) << pre_shift) + r * m in 64-bit lanes, modulo 2^64: equal to the exact product
// whenever that fits (|v * m| < 2^62, the precondition), so every path gives the reference's
// bytes. Even and odd int32 lanes go through separate 64-bit vectors (as in requant()).

template <bool Acc8, bool Self, bool Bias>
static void requant_rows_t(const RowRequantArgs& a, int64_t rb, int64_t re) {
  const int64_t f = a.f;
  const int ps = a.pre_shift;
  const RqBounds bounds(a.rq);
  const I ws = set1(a.self_weight);
  Rq q = rq_prepare_row(a.rq.row_m[0], a.rq.row_s[0], a.rq.zero_point);
  for (int64_t i = rb; i < re; ++i) {
    if (a.per_row) q = rq_prepare_row(a.rq.row_m[i], a.rq.row_s[i], a.rq.zero_point);
    const int8_t* a8 = static_cast<const int8_t*>(a.acc) + i * f;
    const int32_t* a32 = static_cast<const int32_t*>(a.acc) + i * f;
    const int8_t* srow = Self ? a.self + i * f : nullptr;  // a.self is null without Self
    int8_t* orow = a.out + i * f;
    for (int64_t t = 0; t < f; t += W) {
      const Tail tl = tail(static_cast<int>(std::min<int64_t>(W, f - t)));
      I acc;
      if constexpr (Acc8) {
        acc = load_i8_as_i32(a8 + t, tl);
      } else {
        acc = tl.n == W ? loadu(a32 + t) : load(a32 + t, tl);
      }
      I pe = mul_even(acc, q.m);
      I po = mul_even(srli64(acc, 32), q.mo);
      if (ps != 0) {
        pe = slli64(pe, ps);
        po = slli64(po, ps);
      }
      if constexpr (Self || Bias) {
        I r = Bias ? loadu(a.rq.bias + t) : zero();
        if constexpr (Self) r = add(r, mullo(ws, load_i8_as_i32(srow + t, tl)));
        pe = add64(pe, mul_even(r, q.m));
        po = add64(po, mul_even(srli64(r, 32), q.mo));
      }
      const I ve = clamp64(rq_shift(pe, q.he, q.se, q.ze), bounds.lo, bounds.hi);
      const I vo = clamp64(rq_shift(po, q.ho, q.so, q.zo), bounds.lo, bounds.hi);
      store_i8(orow + t, merge_even_odd(ve, vo), tl);
    }
  }
}

using RowRqFn = void (*)(const RowRequantArgs&, int64_t, int64_t);
// kRowRq[acc8 * 4 + self * 2 + bias]
static constexpr std::array<RowRqFn, 8> kRowRq = {
    &requant_rows_t<false, false, false>, &requant_rows_t<false, false, true>,
    &requant_rows_t<false, true, false>,  &requant_rows_t<false, true, true>,
    &requant_rows_t<true, false, false>,  &requant_rows_t<true, false, true>,
    &requant_rows_t<true, true, false>,   &requant_rows_t<true, true, true>};

static void requant_rows(const RowRequantArgs& a, int64_t rb, int64_t re) {
  const size_t k = (a.acc8 ? 4 : 0) + (a.self != nullptr ? 2 : 0) + (a.rq.bias != nullptr ? 1 : 0);
  kRowRq[k](a, rb, re);
}

static constexpr Int8Kernels kKernels{&linear_rows, &spmm_rows, &pack_int4_row, &unpack_int4_row,
                                      &requant_rows};

}  // namespace qgnn::quant_cpu::QGNN_INT8_NS
