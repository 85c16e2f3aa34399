#pragma once
// Integer kernels for INT8 / INT4 GNN inference (Degree-Quant, Tailor et al., ICLR 2021,
// Sec. 3 and App. B: integer-only layers with int32 accumulation and fixed-point
// requantization, as in gemmlowp / TFLite).
//
// Values are symmetric integer codes: INT8 in [-127, 127], INT4 in [-7, 7] (a real value is
// scale * q). A layer is
//   linear:      acc[n, o] = sum_k x_q[n, k] * w_q[o, k]                  (int32, exact)
//   aggregation: acc[i, :] = self_weight * x_q[i, :] + sum_{j in N_in(i)} x_q[j, :]
// followed by requantization of acc to the next layer's codes:
//   q = clamp(round(acc * M) + zero_point, qmin, qmax)
// where M is a fixed-point multiplier (FixedPointMultiplier) and round() is the integer rule
// given at requantize(). Every function below computes exactly this in integers; the SIMD
// paths (AVX-512 VNNI, AVX-512BW, AVX2) and the scalar reference give identical bytes for any
// thread count (tests/quant/test_int8_ops.cpp). int8_kernel_isa() names the path in use.
//
// INT4 is stored packed and computed through int8: two codes per byte, element 2t in the low
// nibble and element 2t + 1 in the high nibble of byte t (two's complement nibbles, so
// [-8, 7] round-trips), rows padded to whole bytes. The int4 kernels unpack nibbles on the
// fly (sign-extended in SIMD registers) and run the int8 arithmetic.
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/util/export.h"

namespace qgnn {

// A positive real multiplier M as m * 2^(shift - 31), with an int32 mantissa m.
//   from_real: m in [2^30, 2^31) (31 significant bits), shift in [-31, 16].
//   combine:   m in [2^29, 2^31) (the rounded product of two mantissas).
//   m == 0 (with shift == -31) is the zero multiplier: every int32 accumulator requantizes to
//   zero_point, which is what round(acc * M) gives for all |acc| < 2^31 when M < 2^-32.
struct QGNN_API FixedPointMultiplier {
  int32_t m = 0;
  int shift = 0;

  // m = round(f * 2^31) and shift = e for M = f * 2^e, f in [0.5, 1) (renormalized when the
  // rounding gives 2^31); the zero multiplier for M < 2^-32.
  // REQUIRES: 0 < M < 2^15, finite. Throws c10::Error naming the bad value.
  static FixedPointMultiplier from_real(double M);

  // The product of two multipliers, rounded once in integers (deterministic):
  //   m = (a.m * b.m + 2^30) >> 31 (64-bit product), shift = a.shift + b.shift,
  //   and the zero multiplier when 31 - shift > 62.
  // Used per (row, column) when a linear output is scaled per channel (s_x s_w[o] / s_y)
  // and per row (GCN's d_j^-1/2). REQUIRES: a.shift + b.shift <= 30 (M_a M_b < 2^30).
  static FixedPointMultiplier combine(FixedPointMultiplier a, FixedPointMultiplier b);

  double to_real() const;  // m * 2^(shift - 31)
};

// Output code range of a requantization (codes are stored in int8 tensors).
//   INT8: qmin = -127, qmax = 127; INT4: qmin = -7, qmax = 7. relu clamps at zero_point
//   (the code of real 0), i.e. the lower bound becomes max(qmin, zero_point).
// REQUIRES: -128 <= qmin <= zero_point <= qmax <= 127.
struct QGNN_API QuantRange {
  int32_t zero_point = 0;
  int32_t qmin = -127;
  int32_t qmax = 127;
  bool relu = false;

  static QuantRange int8(bool relu = false) { return {0, -127, 127, relu}; }
  static QuantRange int4(bool relu = false) { return {0, -7, 7, relu}; }
};

// Requantizes one int32 accumulator:
//   p = acc * m (exact, 64-bit), s = 31 - shift (right shift, 1 <= s <= 62),
//   v = round_half_away_from_zero(p / 2^s) = (p + 2^(s-1) - [p < 0]) >> s (arithmetic shift),
//   q = clamp(v + zero_point, relu ? max(qmin, zero_point) : qmin, qmax).
// This is the rule every kernel implements. REQUIRES: mult from from_real / combine (or
// 0 <= m < 2^31 and -31 <= shift <= 30); out valid.
QGNN_API int32_t requantize(int32_t acc, FixedPointMultiplier mult, const QuantRange& out);

// Fixed-point multipliers of a tensor of reals, one per element: [n] float32/float64 ->
// [n, 2] int32 rows (m, shift) (FixedPointMultiplier::from_real of each value).
// The multiplier tensors taken below have this layout.
// Throws c10::Error naming the first bad value (REQUIRES 0 < M < 2^15).
QGNN_API at::Tensor fixed_point_multipliers(const at::Tensor& real);

// Weights of an INT8 linear layer, pre-packed for the kernels (pack once, apply many times).
// The packed tensors are the kernels' private layout (see src/quant/cpu/int8_kernel.h):
//   packed4: int8 [ceil(K / 4), O16, 4], O16 = ceil(O / 16) * 16, zero padded (vpdpbusd);
//   packed2: int16 [ceil(K / 2), O16, 2], zero padded (vpmaddwd);
//   comp:    int32 [O16], -128 * sum_k w_q[o, k] (the u8 = x + 128 compensation).
struct QGNN_API Int8Linear {
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // O
  at::Tensor weight;         // [O, K] int8 codes, as given
  at::Tensor packed4, packed2, comp;

  bool defined() const { return weight.defined(); }
};

// Packs INT8 weights (symmetric per output channel: values in [-127, 127]; -128 is also
// computed exactly).
//   w_q: [O, K] int8 (torch.int8 / at::kChar), CPU, O >= 1, 1 <= K <= 131071 (so that
//        K * 128 * 128 < 2^31: any int8 dot product fits the int32 accumulator).
// Throws c10::Error naming the bad shape or dtype.
QGNN_API Int8Linear pack_int8_linear(const at::Tensor& w_q);

// Exact int32 linear map: out[n, o] = sum_k x_q[n, k] * w_q[o, k] (= x_q.to(int32) @
// w_q.to(int32).T, computed without overflow).
//   x_q:     [N, K] int8, CPU (any int8 value). returns [N, O] int32.
// Parallel over row blocks. Throws c10::Error on a dtype / shape mismatch.
QGNN_API at::Tensor int8_linear_s32(const at::Tensor& x_q, const Int8Linear& w);

// Requantization of a linear layer's accumulators.
//   col_multiplier: [O, 2] (per output channel, e.g. s_x s_w[o] / s_y) or [1, 2] (per
//                   tensor) int32 rows (m, shift); required.
//   row_multiplier: [N, 2] or [1, 2] int32, optional (e.g. GCN's d_n^-1/2). When given, the
//                   multiplier of element (n, o) is FixedPointMultiplier::combine(row[n],
//                   col[o]).
//   bias:           [O] int32 added to the accumulator before the multiply (bias_real /
//                   (s_x s_w[o])), optional.
//   out:            output code range (int8 or int4 codes, optional ReLU).
struct QGNN_API LinearRequant {
  at::Tensor col_multiplier;
  at::Tensor row_multiplier;
  at::Tensor bias;
  QuantRange out;
};

// Fused INT8 linear + requantization:
//   y[n, o] = clamp(round((acc[n, o] + bias[o]) * M[n, o]) + zero_point, lo, hi)
// with acc of int8_linear_s32 and the rounding of requantize().
//   returns [N, O] int8 codes in [lo, hi].
// REQUIRES: K * 128 * 128 + max|bias| < 2^31 (acc + bias fits int32); row and column shifts
// with shift_row + shift_col <= 30. Throws c10::Error naming the bad argument.
QGNN_API at::Tensor int8_linear(const at::Tensor& x_q, const Int8Linear& w,
                                const LinearRequant& rq);

// The same two maps with INT4-packed activations (rows unpacked block-wise to int8 in L1).
//   x_packed: [N, ceil(K / 2)] uint8 (pack_int4 of [N, K] codes), K = w.in_features.
QGNN_API at::Tensor int4_linear_s32(const at::Tensor& x_packed, const Int8Linear& w);
QGNN_API at::Tensor int4_linear(const at::Tensor& x_packed, const Int8Linear& w,
                                const LinearRequant& rq);

// Exact integer aggregation over in-neighbours (no edge weights):
//   out[i, f] = sum_{e in row i} x_q[indices[e], f]   (int32, exact)
//   g:   CSR [R, C]; edge weights, if any, are ignored (integer layers fold normalizations
//        such as GCN's d^-1/2 into the multipliers). Max in-degree <= 2^24 (so that
//        128 * deg fits int32).
//   x_q: [C, F] int8, CPU. returns [R, F] int32; rows without edges are 0.
// Kernel: rows gathered into int16 accumulators flushed to int32 every 256 edges (exact for
// every int8 value), the rows of the next 96 edges prefetched when x exceeds 4 MB,
// edge-balanced row chunks per thread. Rows of at most 16 bytes (F <= 16; INT4 F <= 32 on
// AVX-512) take a narrow kernel: one 16-byte load per source row, two rows per AVX-512
// vector, four edges per step.
// Throws c10::Error naming the bad argument.
QGNN_API at::Tensor int8_spmm_s32(const CsrGraph& g, const at::Tensor& x_q);

// Requantization of an aggregation.
//   row_multiplier: [R, 2] (e.g. GCN's s_x d_i^-1/2 / s_y, SAGE's s_x / (deg_i s_y)) or
//                   [1, 2] int32 rows (m, shift); required.
//   self_weight:    integer c of the self term c * x_q[i] (GIN with eps = c - 1, or a
//                   self loop without changing the graph); 0 = none. A fractional (1 + eps)
//                   is the caller's: use the s32 variant. REQUIRES a square graph when != 0.
struct QGNN_API SpmmRequant {
  at::Tensor row_multiplier;
  int32_t self_weight = 0;
  QuantRange out;
};

// Fused aggregation + requantization:
//   y[i, f] = clamp(round((self_weight * x_q[i, f] + sum_j x_q[j, f]) * M[i]) + zp, lo, hi)
//   returns [R, F] int8 codes.
// REQUIRES: 128 * (max in-degree + |self_weight|) < 2^31.
QGNN_API at::Tensor int8_spmm(const CsrGraph& g, const at::Tensor& x_q, const SpmmRequant& rq);

// The same two aggregations reading INT4-packed rows directly.
//   x_packed: [C, ceil(F / 2)] uint8 (pack_int4); num_features = F.
// Accumulation is in int16 flushed every 4096 edges (nibbles are in [-8, 7]).
QGNN_API at::Tensor int4_spmm_s32(const CsrGraph& g, const at::Tensor& x_packed,
                                  int64_t num_features);
QGNN_API at::Tensor int4_spmm(const CsrGraph& g, const at::Tensor& x_packed, int64_t num_features,
                              const SpmmRequant& rq);

// Requantization of integer rows with a shift, a self term and a bias: the glue between the
// fused kernels (bias + ReLU + rescale to the next layer's codes, GIN's (1 + eps) self term,
// SAGE's combined neighbour and root terms).
//   pre_shift:      left shift k of acc (a 2^k fixed-point precision of the terms added),
//                   0 <= k <= 31.
//   self:           [N, F] int8 codes; self_weight: the integer c of c * self (0 = no self
//                   term: self is not read).
//   bias:           [F] int32, optional (per column, in units of the shifted accumulator).
//   row_multiplier: [N, 2] (per row) or [1, 2] (per tensor) int32 rows (m, shift); required.
//   out:            output code range (int8 or int4 codes, optional ReLU).
struct QGNN_API RowRequant {
  int pre_shift = 0;
  at::Tensor self;
  int32_t self_weight = 0;
  at::Tensor bias;
  at::Tensor row_multiplier;
  QuantRange out;
};

// out[n, f] = clamp(round(v[n, f] * M_n) + zero_point, lo, hi),
//   v[n, f] = acc[n, f] * 2^pre_shift + self_weight * self[n, f] + bias[f]   (exact, int64),
// with M_n the multiplier of row n (or the single one) and the rounding of requantize()
// (round half away from zero of the 64-bit product v * m).
//   acc:     [N, F] int32 or int8, CPU (int8 is read as is, without a conversion pass).
//   returns: [N, F] int8 codes in [lo, hi].
// The SIMD paths give the scalar reference's bytes for any thread count (parallel over rows).
// REQUIRES: |v * m| < 2^62 for every element (implied by |v| <= 2^31). Checked: shapes and
//   dtypes, the multipliers and range, 0 <= pre_shift <= 31, self given when self_weight != 0,
//   128 |self_weight| + max|bias| < 2^31, and for int8 acc the whole bound
//   (128 * 2^pre_shift + 128 |self_weight| + max|bias|) * max m < 2^62; for int32 acc the
//   bound on acc * 2^pre_shift is the caller's (e.g. 128 * max in-degree * 2^pre_shift).
// Throws c10::Error naming the bad argument and its value.
QGNN_API at::Tensor requantize_rows(const at::Tensor& acc, const RowRequant& rq);

// Packs INT4 codes two per byte (nibble order above).
//   q: [N, F] int8 with values in [-8, 7] (symmetric INT4 uses [-7, 7]); F >= 1.
//   returns [N, ceil(F / 2)] uint8; an odd F leaves the last high nibble 0.
// Throws c10::Error naming the first value out of range.
QGNN_API at::Tensor pack_int4(const at::Tensor& q);

// Inverse of pack_int4: [N, ceil(F / 2)] uint8 -> [N, F] int8 in [-8, 7].
QGNN_API at::Tensor unpack_int4(const at::Tensor& packed, int64_t num_features);

// The integer kernel path in use: "avx512_vnni", "avx512" (AVX-512BW, no VNNI), "avx2" or
// "scalar" (the reference; tests only). Follows cpu::set_isa_limit / QGNN_ISA.
QGNN_API const char* int8_kernel_isa();

}  // namespace qgnn
