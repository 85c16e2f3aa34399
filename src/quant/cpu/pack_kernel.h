#pragma once
// Internal CPU kernels of the packed quantized tensors (not part of the public API).
//
// Row kernels for one row of F values, chosen once per call for the active ISA
// (ops/cpu/kernels.h: AVX2 + FMA + F16C baseline, AVX-512F/VL/BW/DQ at run time). Every
// SIMD path produces bit-identical codes and values: the quantizer computes
//   q = clamp(round_half_even((x - lo) / scale), 0, 2^b - 1)
// with an IEEE division and an explicit round-to-nearest-even (independent of MXCSR), and
// the decoder x^ = q * scale + lo with a separate multiply and add (never fused), the
// formulas of qgnn/quant/packed_tensor.h. Codes are packed LSB-first; groups of 8 codes
// take `bits` whole bytes, so SIMD widths of 8 and 16 codes give the same bytes.
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#include "qgnn/quant/packed_tensor.h"

namespace qgnn {

// Raw, read-only view of a PackedTensor for the kernels.
struct PackedView {
  const uint8_t* codes = nullptr;
  const uint8_t* end = nullptr;     // codes + total bytes
  const int64_t* offset = nullptr;  // [N + 1] byte offsets, or nullptr (single group)
  const uint8_t* group = nullptr;   // [N] group ids, or nullptr (single group)
  const int* group_bits = nullptr;  // [G]
  const float* params = nullptr;    // [P, 2] (scale, lo), or nullptr (no <= 8-bit group)
  bool per_row = false;             // params indexed by row (kRow) instead of group
  int64_t stride = 0;               // bytes per row (single group)
  int64_t rows = 0, cols = 0;
  // Index-list layout (PackedLayout::kIndexList; codes / offset / stride unused): row r's
  // 1-codes are at columns idx16 or idx32 [idx_offset[r], idx_offset[r + 1]).
  bool index_list = false;
  const int64_t* idx_offset = nullptr;  // [N + 1]
  const uint16_t* idx16 = nullptr;      // F <= 65536
  const int32_t* idx32 = nullptr;       // F > 65536

  int bits(int64_t r) const { return group != nullptr ? group_bits[group[r]] : group_bits[0]; }
  const uint8_t* data(int64_t r) const {
    return offset != nullptr ? codes + offset[r] : codes + r * stride;
  }
  const uint8_t* data_end(int64_t r) const {
    return offset != nullptr ? codes + offset[r + 1] : codes + (r + 1) * stride;
  }
  int64_t param_index(int64_t r) const { return per_row ? r : (group != nullptr ? group[r] : 0); }
  float scale(int64_t r) const { return params != nullptr ? params[2 * param_index(r)] : 1.0f; }
  float lo(int64_t r) const { return params != nullptr ? params[2 * param_index(r) + 1] : 0.0f; }
  // The values of codes 0 and 1 of row r, computed as the bitmap decoder does (q * scale +
  // lo): what an index list's absent and listed columns decode to.
  float code0(int64_t r) const { return 0.0f * scale(r) + lo(r); }
  float code1(int64_t r) const { return scale(r) + lo(r); }
};

struct PackedTensorAccess {
  static PackedView view(const PackedTensor& t);
  // Sets t's shape, groups and granularity and allocates its bitmap codes (row offsets
  // with several groups, else a fixed row stride) and num_params (scale, lo) pairs (no
  // parameter tensor when -1: no group has <= 8 bits). row_group: uint8 [N] contiguous, or
  // undefined for a single group. Returns the row byte offsets, or nullptr with a single group.
  static const int64_t* allocate(PackedTensor& t, int64_t n, int64_t f,
                                 const std::vector<int>& group_bits, const at::Tensor& row_group,
                                 Granularity gran, int64_t num_params);
  // Stores the bitmap of t (every group 1 bit) as an index list instead; `ones` [N]: the
  // 1-codes of each row.
  static void to_index_list(PackedTensor& t, const std::vector<int64_t>& ones);
  // Decodes row r of t (either layout, column scales applied) into out [F]; v = view(t).
  // No checks: r must be a row of t.
  static void decode_row(const PackedTensor& t, const PackedView& v, int64_t r, float* out);
};

namespace quant_cpu {

// Bytes of one row of f codes at `bits` bits (1..8, 16, 32): ceil(f * bits / 8).
inline int64_t row_bytes(int64_t f, int bits) { return (f * bits + 7) / 8; }

// Rows per parallel task over [N, F] rows, so that each task handles >= ~32K values.
inline int64_t row_grain(int64_t f) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(f, 1));
}

// Bytes per stored column index of the index-list layout for F columns (uint16 while
// every index fits, else int32).
inline int64_t index_entry_bytes(int64_t f) { return f <= 65536 ? 2 : 4; }

// The affine parameters of a range [lo, hi] at b <= 8 bits (packed_tensor.h):
// scale = (hi - lo) / (2^b - 1), or 1 when hi == lo (or when the quotient underflows to 0).
inline float affine_scale(float lo, float hi, int bits) {
  const float scale = (hi - lo) / static_cast<float>((1 << bits) - 1);
  return (hi == lo || !(scale > 0.0f)) ? 1.0f : scale;
}

// Arguments of the packed SpMM row kernel (packed_spmm.cpp).
struct PackedSpmmArgs {
  const int64_t* indptr;
  const int64_t* indices;
  const float* w;  // [E] or nullptr (ones)
  PackedView x;
  int64_t safe_rows;  // source rows j < safe_rows may be read up to 16 bytes past their end
  float* out;         // [R, F], every element written
  std::atomic<int64_t>* bad_index;  // set to an edge whose index is outside [0, N)
};

// Row kernels of one ISA.
struct Kernels {
  // min / max of x[0, f), f >= 1; returns false when a value is NaN or infinite.
  bool (*minmax)(const float* x, int64_t f, float* mn, float* mx);
  // Quantizes and packs f values at bits in 1..8 into row_bytes(f, bits) bytes. nz = 1
  // raises the code of every non-zero x to at least 1 (Rounding::kNonzero, used when
  // lo == 0), nz = 0 rounds plainly.
  void (*pack)(const float* x, int64_t f, int bits, float scale, float lo, float nz, uint8_t* out);
  // Half-precision (round to nearest even) of f values into 2 f bytes, and back.
  void (*pack_half)(const float* x, int64_t f, uint8_t* out);
  // Decodes f values of a row at bits in {1..8, 16, 32} starting at p; `end` bounds the
  // bytes that may be read (the row's bytes plus whatever follows it in the buffer).
  void (*decode)(const uint8_t* p, const uint8_t* end, int64_t f, int bits, float scale, float lo,
                 float* out);
  // Dot products of packed rows with one float row: out[t] = sum_k y[k] x^[src[t], k] for
  // t < count, x a bitmap (any widths) decoded without its column scales (fold them into
  // y), ysum = sum_k y[k]. The codes are expanded in registers, never stored.
  void (*dot_sources)(const PackedView& x, const float* y, float ysum, const int64_t* src,
                      int64_t count, float* out);
  // out = dequantize(quantize(x)) at bits in 1..8, bit-identical to pack + decode.
  void (*fake)(const float* x, int64_t f, int bits, float scale, float lo, float nz, float* out);
  // Packed SpMM over output rows [rb, re).
  void (*spmm_rows)(const PackedSpmmArgs& a, int64_t rb, int64_t re);
};

// The kernels of the active ISA (re-read on every call: tests may cap the ISA).
const Kernels& kernels();

// packed_linear's GEMM: oneDNN's sgemm on per-thread tiles when the process has it (the
// default), else BLAS blocks (packed_linear.cpp). false forces the BLAS path; for tests and
// benchmarks, not thread-safe with respect to running calls.
QGNN_API void set_packed_linear_onednn(bool enabled);

}  // namespace quant_cpu
}  // namespace qgnn
