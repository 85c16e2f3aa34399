#pragma once
// Internal integer kernels behind qgnn/quant/int8_ops.h (not part of the public API).
//
// One row-range function per op and path; the front-end (quant/int8_ops.cpp) validates
// arguments, builds the raw views below and splits rows over threads. Each output row is
// computed by one call in a fixed order, so results do not depend on the thread count, and
// every path (scalar reference, AVX2, AVX-512BW, AVX-512 VNNI) computes the same integers
// (int8_ops.h gives the formulas).
//
// Weight layouts (Int8Linear), with O16 = ceil(O / 16) * 16 and zero padding:
//   G = 4 (VNNI):   w4[(k4 * O16 + o) * 4 + t] = w[o, 4 k4 + t]            int8
//   G = 2 (madd):   w2[(k2 * O16 + o) * 2 + t] = w[o, 2 k2 + t]            int16
// so one 64-byte (AVX-512) or 32-byte (AVX2) load holds G consecutive k of 16 / 8 channels.
// VNNI computes sum_k (x + 128) * w with vpdpbusd (u8 x s8, exact int32) and starts the
// accumulators at comp[o] = -128 * sum_k w[o, k]; the madd path sign-extends x to int16 and
// uses vpmaddwd (exact), so no path saturates.
//
// Multipliers reach the kernels as (m, s) pairs with s = 31 - shift the right shift.
#include <cstdint>

#include "qgnn/util/export.h"

namespace qgnn::quant_cpu {

enum class Int8Path { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Vnni = 3 };

// The active path: the best one the CPU has under cpu::active_isa() (VNNI only when the
// ISA is kAvx512), capped by set_int8_path_cap.
QGNN_API Int8Path int8_path();
QGNN_API const char* int8_path_name(Int8Path p);
// Caps the path (kScalar runs the reference); for tests and benchmarks, not thread-safe with
// respect to running kernels. Default: no cap (kAvx512Vnni).
QGNN_API void set_int8_path_cap(Int8Path cap);

// Output requantization, shared by linear and SpMM. Arrays are indexed by output channel
// (col_*) and by output row (row_*); nullptr when absent.
struct RequantView {
  const int32_t* col_m = nullptr;  // [O16] (padded with m = 0, s = 62)
  const int32_t* col_s = nullptr;
  const int32_t* bias = nullptr;   // [O16] or nullptr
  const int32_t* row_m = nullptr;  // [N] or nullptr
  const int32_t* row_s = nullptr;
  int32_t zero_point = 0;
  int32_t lo = -127, hi = 127;  // clamp bounds (relu already folded into lo)
};

struct LinearArgs {
  const uint8_t* x = nullptr;  // int8 rows (x4 = false) or int4-packed rows (x4 = true)
  int64_t ldx = 0;             // bytes per row of x
  bool x4 = false;
  int64_t k = 0, o = 0, o16 = 0;
  const int8_t* w = nullptr;    // [O, K] as given (the reference)
  const int8_t* w4 = nullptr;   // G = 4 layout
  const int16_t* w2 = nullptr;  // G = 2 layout
  const int32_t* comp = nullptr;
  int32_t* out_s32 = nullptr;  // [N, O], or nullptr when requantizing
  int8_t* out_q = nullptr;     // [N, O]
  RequantView rq;
};

struct SpmmArgs {
  const int64_t* indptr = nullptr;
  const int64_t* indices = nullptr;
  int64_t num_cols = 0;        // rows of x
  const uint8_t* x = nullptr;  // int8 rows (x4 = false) or int4-packed rows
  int64_t ldx = 0;             // bytes per row of x
  bool x4 = false;
  int64_t f = 0;
  int32_t self_weight = 0;     // requantizing only
  int32_t* out_s32 = nullptr;  // [R, F], or nullptr when requantizing
  int8_t* out_q = nullptr;     // [R, F]
  RequantView rq;              // row_m / row_s used
};

// requantize_rows (int8_ops.h): out[n, f] = requant((acc[n, f] << pre_shift) +
// self_weight * self[n, f] + bias[f]) with the multiplier of row n (per_row) or row 0.
struct RowRequantArgs {
  const void* acc = nullptr;  // [N, F] int32, or int8 when acc8
  bool acc8 = false;
  int64_t f = 0;
  int pre_shift = 0;             // 0..31
  const int8_t* self = nullptr;  // [N, F], or nullptr
  int32_t self_weight = 0;
  bool per_row = false;   // rq.row_m / row_s have N entries (else 1)
  int8_t* out = nullptr;  // [N, F]
  RequantView rq;         // row_m / row_s, bias ([ceil(F / 16) * 16], zero padded)
};

// Row kernels of one path; process output rows [rb, re).
struct Int8Kernels {
  void (*linear_rows)(const LinearArgs& a, int64_t rb, int64_t re);
  void (*spmm_rows)(const SpmmArgs& a, int64_t rb, int64_t re);
  // int4 <-> int8 rows: n values; pack returns false when a value is outside [-8, 7].
  bool (*pack_int4_row)(const int8_t* q, int64_t n, uint8_t* out);
  void (*unpack_int4_row)(const uint8_t* p, int64_t n, int8_t* out);
  void (*requant_rows)(const RowRequantArgs& a, int64_t rb, int64_t re);
};

// The kernels of the active path (re-read on every call: tests switch paths).
const Int8Kernels& int8_kernels();

// Scalar requantization with (m, s): the reference rule of int8_ops.h, for a 64-bit value
// v with |v * m| < 2^62.
inline int32_t requant_ref64(int64_t v, int32_t m, int s, int32_t zp, int32_t lo, int32_t hi) {
  const int64_t p = v * m;
  const int64_t r = (p + (int64_t{1} << (s - 1)) - (p < 0 ? 1 : 0)) >> s;
  const int64_t q = r + zp;
  return static_cast<int32_t>(q < lo ? lo : (q > hi ? hi : q));
}

inline int32_t requant_ref(int32_t acc, int32_t m, int s, int32_t zp, int32_t lo, int32_t hi) {
  return requant_ref64(acc, m, s, zp, lo, hi);
}

// Combined multiplier of (m_a, s_a) and (m_b, s_b) in (m, s) form (FixedPointMultiplier::
// combine): s = s_a + s_b - 31 >= 1; (0, 62) when s > 62.
inline void combine_ref(int32_t ma, int sa, int32_t mb, int sb, int32_t* m, int* s) {
  const int st = sa + sb - 31;
  if (st > 62) {
    *m = 0;
    *s = 62;
    return;
  }
  *m = static_cast<int32_t>((static_cast<int64_t>(ma) * mb + (int64_t{1} << 30)) >> 31);
  *s = st;
}

}  // namespace qgnn::quant_cpu
