#pragma once
// Bit-packed quantized matrices: SGQuant's linear quantization stored for real.
//
// Quantization (SGQuant, Feng et al. ICTAI 2020, Eq. 1) is linear and asymmetric. For a
// parameter group with range [lo, hi] and b bits (1 <= b <= 8):
//   scale = (hi - lo) / (2^b - 1)      (scale = 1 when hi == lo)
//   q     = clamp(round_half_even((x - lo) / scale), 0, 2^b - 1)     [stored code]
//   x^    = lo + q * scale                                            [dequantized]
// so |x - x^| <= scale / 2 for x in [lo, hi]. (The paper writes floor; round-to-nearest
// halves the worst-case error at the same storage and is what we implement and test.)
// Evaluated in float32 exactly as written: an IEEE division, round half to even (as
// std::nearbyint in the default mode), and x^ with a separate multiply and add (never an
// FMA), so x^ equals ATen's q * scale + lo bit for bit. Every SIMD path (AVX2, AVX-512)
// gives identical codes and values. Re-encoding x^ gives the same codes; its values may
// differ by a few ulp (hi' = lo + (2^b - 1) scale can round off hi) and are then fixed.
// b = 16 stores IEEE half precision (round to nearest even, as c10::Half), b = 32 stores
// float32 as is (pass-through).
//
// Layouts (PackedLayout; the codes, parameters and decoded values are the same in both):
//  - kBitmap: rows are independent; row r holds F codes of bits(r) bits, packed LSB-first
//    into ceil(F * bits(r) / 8) bytes, each row starting at a byte boundary. Rows may have
//    different bit widths (topology-aware quantization gives each in-degree bucket its
//    own bits); then a row offset table locates them.
//  - kIndexList (only when every row has 1 bit): CSR-style, row r holds the sorted column
//    indices of its codes equal to 1 (uint16 when F <= 65536, else int32) and an int64
//    offset table [N + 1] locates them. Lossless; chosen by pack() whenever it takes
//    strictly fewer bytes than the bitmap, which is the case for sparse binary
//    bag-of-words inputs (Cora: 1.3% of the codes are 1, CiteSeer 0.85%).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/util/export.h"

namespace qgnn {

// Where the (lo, hi) range of a code group is measured.
enum class Granularity {
  kTensor,  // one range per tensor (per bucket when rows have bucket-dependent bits)
  kBucket,  // one range per row group (in-degree bucket)
  kRow,     // one range per row
};

// How rows are grouped and how many bits each group gets.
//   row_group: [N] uint8 group id per row, or undefined when there is a single group.
//   group_bits: bits of each group, each in {1..8, 16, 32}; size = number of groups.
struct RowBits {
  at::Tensor row_group;
  std::vector<int> group_bits;

  static RowBits uniform(int bits) { return RowBits{{}, {bits}}; }
  int64_t num_groups() const { return static_cast<int64_t>(group_bits.size()); }
};

// How codes are stored (see the file comment).
// The code widths qgnn stores, the one definition (BitPolicy, PackedTensor and the memory
// accounting all check against it): 1..8 bits (bit-packed codes), 16 (IEEE half) and 32
// (fp32, unquantized).
QGNN_API bool is_valid_bits(int bits);

enum class PackedLayout { kBitmap, kIndexList };

// How a value becomes a code (BitPolicy's round= clause).
//   kNearest  q = round_half_even((x - lo) / scale), clamped (SGQuant, the default).
//   kNonzero  as kNearest, but in a row (or group) whose range starts at lo == 0 (a
//             non-negative row that holds a zero: code 0 decodes to exactly 0) a non-zero
//             x takes at least code 1, so no feature present in the input is lost. At
//             1 bit this stores sign(x) * hi (binarization with the row's scale). Sparse
//             inputs (bag-of-words counts, TF-IDF) lose their small values to code 0
//             otherwise: on Coauthor CS (row-normalized counts, GCN) the input at 1 bit
//             drops 0.2 test points with kNonzero vs 2.0 with kNearest (bench/RESULTS.md).
enum class Rounding { kNearest, kNonzero };
QGNN_API std::string to_string(Rounding r);  // "nearest", "nonzero"

// Quantization options beyond bits and range granularity.
//   rounding: see Rounding.
//   column_scale: [F] float32, finite and > 0, or undefined. When defined, column j is
//     quantized as x[:, j] / column_scale[j] (row ranges measured on the scaled values)
//     and decoded as x^[:, j] = column_scale[j] * (lo + scale q): per-column quantization
//     parameters on top of per-row / per-bucket ranges (4 F bytes; ignored when no row
//     group has <= 8 bits). TF-IDF features
//     tf * idf_j with binary tf become exactly binary, so 1 bit holds them losslessly.
struct QuantOptions {
  Rounding rounding = Rounding::kNearest;
  at::Tensor column_scale;
};

// Per-column scales for QuantOptions::column_scale: the mean |x[i, j]| over the rows where
// x[i, j] != 0 (1 for an all-zero column). x: [N, F] float32 CPU. Returns [F] float32.
QGNN_API at::Tensor column_scales(const at::Tensor& x);

// The layout pack() may use: kAuto picks kIndexList when every group has 1 bit and the
// index list is strictly smaller than the bitmap; kBitmap always stores the bitmap.
enum class PackLayoutChoice { kAuto, kBitmap };

// Bytes of the index-list layout's code structure (indices + offsets) for a [rows, cols]
// matrix with `ones` codes equal to 1: ones * (cols <= 65536 ? 2 : 4) + 8 (rows + 1).
QGNN_API int64_t index_list_code_bytes(int64_t rows, int64_t cols, int64_t ones);

// The layout choice of pack() (kAuto) for a non-empty 1-bit [rows, cols] tensor with
// `ones` 1-codes: an index list iff index_list_code_bytes() is strictly below the bitmap's
// code structure, its `bitmap_code_bytes` plus, with several row groups, its 8 (rows + 1)
// bytes of row offsets. False for an empty tensor.
QGNN_API bool index_list_is_smaller(int64_t rows, int64_t cols, int64_t ones,
                                    int64_t bitmap_code_bytes, bool several_groups);

class QGNN_API PackedTensor {
 public:
  PackedTensor() = default;

  // Quantizes and packs x.
  //   x: [N, F] float32 CPU (any strides). rows: grouping and bits (row_group values
  //   < group_bits.size()). gran: range granularity (ignored for 16/32-bit groups).
  //   layout: kAuto stores a 1-bit tensor as an index list when that is strictly smaller
  //   (index_list_code_bytes(N, F, ones) < the bitmap's code bytes plus, with several
  //   groups, its 8 (N + 1) bytes of row offsets); kBitmap forces the bitmap.
  //   returns: the packed tensor; x is not kept. Building an index list goes through the
  //   bitmap (N ceil(F / 8) transient bytes), so the codes are the bitmap's by
  //   construction.
  // REQUIRES: finite x; every bits value in {1..8, 16, 32}.
  // Throws c10::Error naming the bad argument and value.
  //   opt: rounding and column scales (QuantOptions); the tensor keeps the column scales,
  //   and decode() / decode_rows() / packed_linear() / packed_spmm() apply them.
  static PackedTensor pack(const at::Tensor& x, const RowBits& rows,
                           Granularity gran = Granularity::kRow,
                           PackLayoutChoice layout = PackLayoutChoice::kAuto,
                           const QuantOptions& opt = {});

  // Packs an [R, F] matrix produced block by block, never holding it whole: equal (codes,
  // parameters, bytes) to pack(x, rows, gran, PackLayoutChoice::kBitmap, {rounding}) of
  // the full matrix x.
  //   bounds: block boundaries 0 = b_0 <= b_1 <= ... <= b_K = R; produce(k, out) writes
  //   rows [b_k, b_{k+1}) of x into out (row-major, F floats per row). Blocks are produced
  //   in parallel (produce must be thread-safe), each once with per-row ranges and twice
  //   with kTensor / kBucket ranges (the first pass measures the ranges).
  //   Peak extra memory: one block per task.
  // Throws c10::Error for bad bounds or bits, and when a value is not finite.
  using BlockProducer = std::function<void(int64_t block, float* out)>;
  static PackedTensor pack_blocks(int64_t rows_n, int64_t cols, const std::vector<int64_t>& bounds,
                                  const RowBits& rows, Granularity gran, Rounding rounding,
                                  const BlockProducer& produce);

  // Stacks packed row blocks, as if the stacked float matrix had been packed at once:
  // layout, codes, decode() and nbytes() equal pack(cat(x_i), RowBits::uniform(b), kRow,
  // layout)'s. Lets a matrix too large for memory be packed chunk by chunk (per-row ranges
  // make chunks independent).
  //   parts: >= 1 defined tensors packed with the same single-group bits b, the same
  //   column count, and Granularity::kRow (any granularity when b is 16 or 32); for b = 1
  //   parts may have either layout (they are converted). Each part is released as soon
  //   as it is copied, so the peak is the result plus the parts.
  // Throws c10::Error naming the first offending part.
  static PackedTensor concat_rows(std::vector<PackedTensor> parts,
                                  PackLayoutChoice layout = PackLayoutChoice::kAuto);

  int64_t num_rows() const { return rows_; }
  int64_t num_cols() const { return cols_; }
  bool defined() const { return codes_.defined(); }
  PackedLayout layout() const { return layout_; }

  // Exact bytes held: codes + quantization parameters (scale, lo as float32: 8 bytes per
  // row for kRow, per group otherwise; none when every group is 16/32-bit) and, with
  // several groups only, the row group ids (N) and the per-group bits (1 byte each), plus
  // for the bitmap the row offset table (8 (N + 1)). This is the "stored bytes" of the
  // memory accounting in DESIGN.md.
  //   kBitmap:    N = 3, F = 10, 3 bits, kRow: 3 * ceil(30 / 8) + 3 * 8 = 36.
  //   kIndexList: code bytes = index_list_code_bytes(N, F, ones) (indices + offsets).
  //               N = 4, F = 1000, 1 bit, kRow, 10 ones: 10 * 2 + 8 * 5 = 60 code bytes,
  //               + 4 * 8 params = 92 (the bitmap would take 4 * 125 + 32 = 532).
  int64_t nbytes() const;
  // Bytes of the code structure: the bitmap's codes, or the index list's indices plus its
  // offsets (for average bits = 8 * code_bytes / values).
  int64_t code_bytes() const;
  // 8 * code_bytes() / (N * F).
  double average_bits() const;
  // Codes equal to 1 (kIndexList: the number of stored indices; kBitmap: -1).
  int64_t num_index_entries() const;

  // Dequantized rows [begin, end) into out (row-major, ld = F floats). Parallel over rows
  // (serial inside a parallel region). Throws c10::Error for a bad row range.
  void decode_rows(int64_t begin, int64_t end, float* out) const;
  // Dequantized matrix [N, F] float32 (materializes it: for tests and small tensors).
  at::Tensor decode() const;
  // The integer codes [N, F] int32 (for tests: idempotence, code equality); 16-bit rows
  // give the half's bits, 32-bit rows the float's bits.
  at::Tensor codes_as_int() const;

  // Per-row access for kernels: bits, byte pointer, scale and lo of row r. Rows of
  // 16/32-bit groups report scale 1 and lo 0 (x^ = stored value).
  // REQUIRES: 0 <= r < num_rows(); row_data: layout() == kBitmap (an index list has no
  // row bytes: use row_indices()). Throws c10::Error otherwise.
  int row_bits(int64_t r) const;
  const uint8_t* row_data(int64_t r) const;
  float row_scale(int64_t r) const;
  float row_lo(int64_t r) const;

  // The sorted column indices of row r's 1-codes (kIndexList): exactly one of u16 / i32
  // is set (u16 when F <= 65536), `size` entries long; valid while the tensor lives.
  // REQUIRES: layout() == kIndexList, 0 <= r < num_rows(). Throws c10::Error otherwise.
  struct RowIndices {
    const uint16_t* u16 = nullptr;
    const int32_t* i32 = nullptr;
    int64_t size = 0;
    int64_t operator[](int64_t i) const { return u16 != nullptr ? u16[i] : i32[i]; }
  };
  RowIndices row_indices(int64_t r) const;

  Granularity granularity() const { return gran_; }
  const std::vector<int>& group_bits() const { return group_bits_; }
  // [F] float32 column scales (QuantOptions::column_scale), or undefined. Decoded values
  // are column_scale[j] * (row_lo(r) + row_scale(r) q): row_scale / row_lo exclude it.
  const at::Tensor& column_scale() const { return col_scale_; }

 private:
  friend struct PackedTensorAccess;  // raw view for the kernels (src/quant/packed_internal.h)

  int64_t rows_ = 0, cols_ = 0;
  PackedLayout layout_ = PackedLayout::kBitmap;
  at::Tensor codes_;         // uint8 [total bytes]; kIndexList: the indices' bytes
  at::Tensor row_offset_;    // int64 [N + 1], bitmap with several groups only
  at::Tensor index_offset_;  // int64 [N + 1] index entries, kIndexList only
  at::Tensor row_group_;     // uint8 [N], only with several groups
  std::vector<int> group_bits_;
  Granularity gran_ = Granularity::kRow;
  // float32 [P, 2] rows (scale, lo), interleaved so that a kernel reads one cache line per
  // source row: P = N (kRow) or number of groups; undefined when no group has <= 8 bits.
  at::Tensor params_;
  int64_t row_stride_ = 0;  // bytes per row with a single group
  at::Tensor col_scale_;    // float32 [F], or undefined

  // Multiplies one decoded row by the column scales (no-op without them).
  void scale_columns(float* row, int64_t f) const;
};

// Fake quantization: x^ = dequantize(quantize(x)) with the same parameters PackedTensor
// would use, as a float32 tensor of x's shape, computed without packing. Differentiable
// with the straight-through estimator (SGQuant Sec. III-D): d x^ / d x = 1 inside
// [lo, hi] and 0 outside (ranges come from x itself here, so every x is inside).
//   x: [N, F] float32 CPU (any strides). returns [N, F], bit-identical to
//   PackedTensor::pack(x, rows, gran, kAuto, opt).decode().
// Throws c10::Error as pack() does.
QGNN_API at::Tensor fake_quantize(const at::Tensor& x, const RowBits& rows,
                                  Granularity gran = Granularity::kRow,
                                  const QuantOptions& opt = {});

// Aggregation over packed rows without materializing the float matrix:
//   out[i] = sum_{e = (j -> i)} w_e * x^[j]   (CsrGraph convention)
//   indptr/indices: the CSR of the graph; w: [E] float32 or undefined (ones).
//   returns [R, F] float32.
// Decodes row j's codes on the fly (x^[j] = lo_j + scale_j q_j, so the kernel
// accumulates w scale_j q_j and adds sum_e w_e lo_j once per row); rows may have different
// bits. An index-list x adds w_e scale_j at row j's indices instead. Matches spmm(A, decode()) to
// float rounding (the order of the sums differs). Throws c10::Error for malformed CSR arrays
// (indptr not starting at 0, decreasing or not ending at E; an index outside [0, N)) or shape /
// dtype mismatches. Deterministic: each output row is summed in edge order, for any thread count
// and SIMD path.
QGNN_API at::Tensor packed_spmm(const at::Tensor& indptr, const at::Tensor& indices,
                                const at::Tensor& w, const PackedTensor& x);
// Same over a validated graph, with its edge weights (g.weights(), or ones).
//   REQUIRES: g.num_cols() == x.num_rows().
QGNN_API at::Tensor packed_spmm(const CsrGraph& g, const PackedTensor& x);

// Attention-weighted aggregation with packed attention values (GAT, AGNN under packed
// inference):
//   out[i, h, :] = sum_{e = (j -> i)} alpha^[e, h] * x[j, h, :]
//   g: the graph attended over (rows = targets); x: [N, H * D] float32 (head h's features
//   in columns [h D, (h + 1) D)); alpha: [E, H] packed, one row per edge of g in CSR order
//   (column scales allowed). returns [R, H * D] float32.
// Decodes each target row's alpha rows into a per-task buffer (never the whole [E, H]).
// Matches spmm(g, x.view({N, H, D}), kSum, alpha.decode()) to float rounding. No autograd.
// Throws c10::Error on shape mismatches.
QGNN_API at::Tensor packed_attention_spmm(const CsrGraph& g, const at::Tensor& x,
                                          const PackedTensor& alpha);
// Rows [row_begin, row_end) of packed_attention_spmm(g, x, alpha) (the same arithmetic),
// written row-major into out ([row_end - row_begin, H * D], every element written).
// Serial: callers run blocks of rows in parallel (a layer producing its output block by
// block for packing, PackedTensor::pack_blocks). x must be contiguous.
// Throws c10::Error on shape mismatches and rows outside [0, R).
QGNN_API void packed_attention_spmm_rows(const CsrGraph& g, const at::Tensor& x,
                                         const PackedTensor& alpha, int64_t row_begin,
                                         int64_t row_end, float* out);
// The same over A + I read from A (no A + I copy): g is A, loop_indptr the row pointer of
// A + I ([N + 1] int64, GraphOperators::self_loops_indptr()), alpha one row per edge of
// A + I in CsrGraph::with_self_loops() order. Equals the overload above on
// g.with_self_loops() bit for bit.
QGNN_API void packed_attention_spmm_rows(const CsrGraph& g, const at::Tensor& loop_indptr,
                                         const at::Tensor& x, const PackedTensor& alpha,
                                         int64_t row_begin, int64_t row_end, float* out);

// AGNN's packed propagation (Thekumparampil et al. 2018, Eqs. 5-6) over A + I read from A
// (g is A, loop_indptr = GraphOperators::self_loops_indptr(), edges of A + I in
// CsrGraph::with_self_loops() order), a block of target rows at a time, never decoding x
// whole. Both serial (callers run blocks in parallel) and throw c10::Error on shape
// mismatches and rows outside [0, N).
//
// Edge dot products of packed rows: for each edge e = (j -> i) of A + I with i in
// [row_begin, row_end), out[e - loop_indptr[row_begin]] = s_i s_j (x^_i . x^_j), x^ =
// x.decode() ([N, F], either layout, column scales applied), s = row_scale ([N] float32,
// e.g. inverse row norms for cosine similarity; undefined: ones). Decodes source rows on
// the fly. Matches sddmm_dot(g.with_self_loops(), x^ * s, x^ * s) to float rounding.
QGNN_API void packed_sddmm_dot_rows(const CsrGraph& g, const at::Tensor& loop_indptr,
                                    const PackedTensor& x, const at::Tensor& row_scale,
                                    int64_t row_begin, int64_t row_end, float* out);
// Single-head attention over packed x and packed alpha ([E', 1], one row per edge of
// A + I): rows [row_begin, row_end) of sum_{e = (j -> i)} alpha^[e] x^[j], written
// row-major into out ([row_end - row_begin, F], every element written), with the packed
// SpMM kernel. Matches packed_attention_spmm_rows(g, loop_indptr, x.decode(), alpha, ...)
// to float rounding.
QGNN_API void packed_attention_spmm_rows(const CsrGraph& g, const at::Tensor& loop_indptr,
                                         const PackedTensor& x, const PackedTensor& alpha,
                                         int64_t row_begin, int64_t row_end, float* out);

// Linear transform of packed rows: x^ W^T (+ b), decoding tiles of rows into a small
// per-thread float buffer (never the whole matrix), each multiplied right away (oneDNN's
// sgemm when the process has it, else libtorch's BLAS on blocks of rows). An index-list
// tensor is not decoded: out[r] = lo_r colsum(W) + scale_r sum_{j in idx(r)} W[:, j] (+ b),
// gathering rows of a transposed copy of W ([F, out], made once per call), parallel over
// rows.
//   weight: [out, F]; bias: [out] or undefined. returns [N, out] float32. No autograd.
QGNN_API at::Tensor packed_linear(const PackedTensor& x, const at::Tensor& weight,
                                  const at::Tensor& bias = {});

}  // namespace qgnn
