#pragma once
// The one quantizer: a QuantSpec says how one quantization point is quantized, and a
// Quantizer built from it is the only code that turns the point's values into codes.
// Fake quantization (SGQuant fine-tuning, QAT), packed storage, the integer lowering and
// the memory accounting all go through it (BitPolicy::spec parses the spec from the
// policy text, quant/bit_policy.h).
//
// A spec has five axes (and SGQuant's two storage options):
//   bits         code width 1..8; IEEE half and full precision are schemes, not widths
//   scheme       affine     x^ = lo + q scale, q in [0, 2^b - 1] (SGQuant Eq. 1;
//                           packed_tensor.h has the exact arithmetic)
//                symmetric  x^ = q scale, q in [-qmax, qmax], qmax = 2^(b-1) - 1
//                           (Degree-Quant; what the integer kernels compute)
//                half       IEEE binary16, round to nearest even (16 stored bits)
//                full       float32 as is (32 bits; the point is not quantized)
//   range        minmax     the group's own extremes, measured on the values quantized
//                momentum   running extremes, r = (1 - m) r + m batch (QAT observers)
//                percentile the (100 - p)th / pth percentiles of a sample (Degree-Quant's
//                           robust range)
//   granularity  tensor / degree bucket / row (Granularity in packed_tensor.h); weights
//                (row = output channel)
//   layout       bitmap, index list (1 bit, lossless for sparse binary inputs), auto
//                (the index list when strictly smaller; PackedLayout in packed_tensor.h),
//                or nibble (symmetric int4 codes two per byte, the integer model's)
//   rounding, column scales: SGQuant storage options (Rounding, QuantOptions)
//   TAQ buckets: topology-aware bits by in-degree (rows of bucket g get min(bits, cap_g))
//
// Consumers check that they can honour a spec and refuse one they cannot, naming the
// point and the axis (packed storage stores affine codes with min-max ranges; QAT's
// integer kernels need symmetric codes and a per-tensor range).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qgnn/quant/packed_tensor.h"
#include "qgnn/util/export.h"

namespace qgnn {

enum class QuantScheme { kAffine, kSymmetric, kHalf, kFull };
enum class RangeRule { kMinMax, kMomentum, kPercentile };
// Layout axis: kAuto = PackLayoutChoice::kAuto (the index list when every row has 1 bit
// and it is strictly smaller); kBitmap; kIndexList (the index list, and pack() refuses a
// tensor where it would not be smaller); kNibble: signed 4-bit symmetric codes two per
// byte (pack_int4, quant/int8_ops.h), what the int4 kernels read.
enum class LayoutRule { kAuto, kBitmap, kIndexList, kNibble };

// Names in policies and reports, and back (parsing throws c10::Error naming the value).
QGNN_API std::string to_string(QuantScheme s);  // affine, symmetric, half, full
QGNN_API std::string to_string(RangeRule r);    // minmax, momentum, percentile
QGNN_API std::string to_string(LayoutRule l);   // auto, bitmap, index, nibble
QGNN_API std::string to_string(Granularity g);  // tensor, bucket, row
QGNN_API QuantScheme parse_quant_scheme(const std::string& s);
QGNN_API RangeRule parse_range_rule(const std::string& s);
QGNN_API LayoutRule parse_layout_rule(const std::string& s);
QGNN_API Granularity parse_granularity(const std::string& s);

// In-degree buckets with their bit caps. upper[g] is the inclusive in-degree bound of
// bucket g (the last bucket has none); empty upper with several bits = quantile buckets.
struct DegreeBuckets {
  std::vector<int64_t> upper;
  std::vector<int> bits;
  bool quantile() const { return upper.empty() && bits.size() > 1; }
  bool operator==(const DegreeBuckets& o) const { return upper == o.upper && bits == o.bits; }
};

// How one quantization point is quantized (see the file comment).
struct QuantSpec {
  int bits = 32;  // 1..8 for affine / symmetric; 16 for half; 32 for full
  QuantScheme scheme = QuantScheme::kFull;
  RangeRule range = RangeRule::kMinMax;
  Granularity granularity = Granularity::kRow;
  LayoutRule layout = LayoutRule::kBitmap;
  Rounding rounding = Rounding::kNearest;
  bool column_scales = false;
  std::optional<DegreeBuckets> buckets;  // TAQ (affine only)

  bool quantized() const { return scheme != QuantScheme::kFull; }
  // "4b affine minmax row bitmap" (+ " nonzero", " cols", " taq=...").
  std::string to_string() const;
};

// Largest code of b-bit symmetric quantization: 2^(b-1) - 1 (127 at 8 bits, 7 at 4).
inline int symmetric_qmax(int bits) { return (1 << (bits - 1)) - 1; }

// Symmetric codes clamp(round_half_even(x / scale), -qmax, qmax), as float32 of x's shape
// (no autograd). The one rounding rule of symmetric quantization: QAT's fake
// quantization and the integer model's stored codes both come from here.
//   x: float32, any shape; scale: 0-dim or [x.size(0)] float32 > 0; bits in 2..8.
QGNN_API at::Tensor symmetric_codes(const at::Tensor& x, const at::Tensor& scale, int bits);

// Symmetric fake quantization with a straight-through gradient:
// symmetric_codes(x, scale, bits) * scale; the gradient is dy where
// |x / scale| <= qmax + 1/2, else 0 (Bengio et al. 2013).
QGNN_API at::Tensor fake_quantize_symmetric(const at::Tensor& x, const at::Tensor& scale, int bits);

// Symmetric scale of a range: max(|lo|, |hi|) / qmax, or 1 for an all-zero range.
QGNN_API float symmetric_scale(float lo, float hi, int bits);

// Per-output-channel symmetric scale of a weight [out, in]: max_k |w_ck| / qmax (1 for
// an all-zero row), as [out] float32.
QGNN_API at::Tensor weight_scale(const at::Tensor& w, int bits);

// Observed (min, max) of x for one observer step, without autograd: the exact extremes
// (kMinMax, kMomentum) or the (100 - p)th / pth nearest-rank percentiles of `sample_size`
// values drawn uniformly with replacement from libtorch's generator (all values when x
// has at most sample_size). Returns {0, 0} for an empty x.
QGNN_API std::pair<float, float> observe_range(const at::Tensor& x, RangeRule rule,
                                               double percentile, int64_t sample_size);

// The running range of one activation point.
struct ObservedRange {
  float lo = 0, hi = 0;
  int64_t updates = 0;  // 0: never observed
};

// A range observer (range rule momentum or percentile): folds each training batch's
// observe_range into the running range, the first batch taken as is.
struct QGNN_API RangeObserver {
  RangeRule rule = RangeRule::kMomentum;
  double momentum = 0.1;       // weight of the newest batch, in (0, 1]
  double percentile = 99.9;    // kPercentile: in (50, 100]
  int64_t sample_size = 4096;  // kPercentile: values sampled per step, >= 1
  // Updates r with x's batch range and returns it.
  const ObservedRange& update(ObservedRange& r, const at::Tensor& x) const;
};

// Bytes PackedTensor::pack holds for a [rows, cols] matrix (equal to nbytes(), checked by
// tests), and its code bytes. The one statement of the layout's size rules.
struct PackedSize {
  int64_t bytes = 0;
  int64_t code_bytes = 0;
  PackedLayout layout = PackedLayout::kBitmap;
};

class QGNN_API Quantizer {
 public:
  // Throws c10::Error when the spec is inconsistent (bits outside the scheme's widths,
  // TAQ or an index list with a scheme other than affine, an index list above 1 bit).
  explicit Quantizer(QuantSpec spec);
  const QuantSpec& spec() const { return spec_; }

  // Row grouping and bits of the point's rows: one group, or TAQ's buckets by in-degree
  // (rows of bucket g get min(bits, cap_g)).
  //   row_degree: [R] int64 in-degree of each row's node (only read under TAQ).
  //   population: degrees whose quantiles place quantile buckets (undefined: row_degree).
  RowBits row_bits(const at::Tensor& row_degree, const at::Tensor& population = {}) const;
  // True when row_bits reads its degrees (TAQ on a quantized affine point).
  bool needs_degrees() const;

  // --- affine and half: SGQuant storage ---
  // The options (rounding, column scales measured on x) for quantizing x.
  QuantOptions options(const at::Tensor& x) const;
  // x^ of x ([R, F] float32) with straight-through gradients; equal to pack(x).decode().
  at::Tensor fake_quantize(const at::Tensor& x, const RowBits& rows) const;
  // Packed storage of x ([R, F] float32) in the spec's layout.
  PackedTensor pack(const at::Tensor& x, const RowBits& rows) const;
  // Packed storage of a matrix produced block by block (PackedTensor::pack_blocks);
  // a bitmap. Throws for column scales (they need the whole matrix).
  PackedTensor pack_blocks(int64_t rows_n, int64_t cols, const std::vector<int64_t>& bounds,
                           const RowBits& rows, const PackedTensor::BlockProducer& produce) const;
  // Size of pack(x, rows) for a [rows_n, cols] x: as a bitmap (dense codes) when
  // ones < 0, else in the layout pack() would choose given x's number of 1-codes at
  // 1 bit. Equal to pack(x, rows).nbytes() / code_bytes() (tests check it).
  PackedSize packed_size(int64_t rows_n, int64_t cols, const RowBits& rows,
                         int64_t ones = -1) const;

  // --- symmetric: QAT and the integer model ---
  // Scale of a range (symmetric_scale) and of a weight's output channels (weight_scale).
  float scale(float lo, float hi) const;
  at::Tensor weight_scale(const at::Tensor& w) const;
  // Integer codes (symmetric_codes) and fake quantization (fake_quantize_symmetric).
  at::Tensor codes(const at::Tensor& x, const at::Tensor& scale) const;
  at::Tensor fake_quantize(const at::Tensor& x, const at::Tensor& scale) const;
  // Integer codes as stored: int8 [R, F] (one code per byte), or with the nibble layout
  // uint8 [R, ceil(F / 2)] (pack_int4). codes: int8 in [-qmax, qmax].
  at::Tensor store_codes(const at::Tensor& codes) const;

 private:
  QuantSpec spec_;
  void require_symmetric(const char* what) const;
};

}  // namespace qgnn
