#include "qgnn/quant/quantizer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "qgnn/quant/int8_ops.h"

namespace qgnn {

std::string to_string(QuantScheme s) {
  switch (s) {
    case QuantScheme::kAffine:
      return "affine";
    case QuantScheme::kSymmetric:
      return "symmetric";
    case QuantScheme::kHalf:
      return "half";
    case QuantScheme::kFull:
      return "full";
  }
  return "?";
}

std::string to_string(RangeRule r) {
  switch (r) {
    case RangeRule::kMinMax:
      return "minmax";
    case RangeRule::kMomentum:
      return "momentum";
    case RangeRule::kPercentile:
      return "percentile";
  }
  return "?";
}

std::string to_string(LayoutRule l) {
  switch (l) {
    case LayoutRule::kAuto:
      return "auto";
    case LayoutRule::kBitmap:
      return "bitmap";
    case LayoutRule::kIndexList:
      return "index";
    case LayoutRule::kNibble:
      return "nibble";
  }
  return "?";
}

std::string to_string(Granularity g) {
  switch (g) {
    case Granularity::kTensor:
      return "tensor";
    case Granularity::kBucket:
      return "bucket";
    case Granularity::kRow:
      return "row";
  }
  return "?";
}

QuantScheme parse_quant_scheme(const std::string& s) {
  if (s == "affine") return QuantScheme::kAffine;
  if (s == "symmetric") return QuantScheme::kSymmetric;
  if (s == "half") return QuantScheme::kHalf;
  if (s == "full") return QuantScheme::kFull;
  TORCH_CHECK(false, "unknown scheme '", s, "' (affine, symmetric, half or full)");
}

RangeRule parse_range_rule(const std::string& s) {
  if (s == "minmax") return RangeRule::kMinMax;
  if (s == "momentum") return RangeRule::kMomentum;
  if (s == "percentile") return RangeRule::kPercentile;
  TORCH_CHECK(false, "unknown range rule '", s, "' (minmax, momentum or percentile)");
}

LayoutRule parse_layout_rule(const std::string& s) {
  if (s == "auto") return LayoutRule::kAuto;
  if (s == "bitmap") return LayoutRule::kBitmap;
  if (s == "index") return LayoutRule::kIndexList;
  if (s == "nibble") return LayoutRule::kNibble;
  TORCH_CHECK(false, "unknown layout '", s, "' (auto, bitmap, index or nibble)");
}

Granularity parse_granularity(const std::string& s) {
  if (s == "row") return Granularity::kRow;
  if (s == "tensor") return Granularity::kTensor;
  if (s == "bucket") return Granularity::kBucket;
  TORCH_CHECK(false, "unknown granularity '", s, "' (row, tensor or bucket)");
}

std::string QuantSpec::to_string() const {
  std::ostringstream os;
  if (!quantized()) return "full";
  if (scheme == QuantScheme::kHalf) return "half";
  os << bits << "b " << qgnn::to_string(scheme) << ' ' << qgnn::to_string(range) << ' '
     << qgnn::to_string(granularity) << ' ' << qgnn::to_string(layout);
  if (rounding != Rounding::kNearest) os << ' ' << qgnn::to_string(rounding);
  if (column_scales) os << " cols";
  if (buckets) {
    os << " taq=";
    for (size_t i = 0; i < buckets->bits.size(); ++i) {
      os << (i ? "," : "") << buckets->bits[i];
      if (i < buckets->upper.size()) os << "@<=" << buckets->upper[i];
    }
  }
  return os.str();
}

// ---------------------------------------------------------------- symmetric

namespace {

void check_symmetric_bits(int bits, const char* what) {
  TORCH_CHECK(bits >= 2 && bits <= 8, what, ": symmetric quantization needs 2..8 bits, got ", bits);
}

// The scale broadcast over x's rows (0-dim stays 0-dim).
at::Tensor row_broadcast(const at::Tensor& scale, const at::Tensor& x, const char* what) {
  TORCH_CHECK(scale.dim() == 0 || (scale.dim() == 1 && x.dim() >= 1 && scale.size(0) == x.size(0)),
              what, ": scale must be a scalar or [x.size(0)], got ", scale.sizes(), " for x ",
              x.sizes());
  at::Tensor s = scale.to(at::kFloat);
  if (s.dim() == 1) {
    std::vector<int64_t> shape(x.dim(), 1);
    shape[0] = x.size(0);
    s = s.view(shape);
  }
  return s;
}

}  // namespace

at::Tensor symmetric_codes(const at::Tensor& x, const at::Tensor& scale, int bits) {
  check_symmetric_bits(bits, "symmetric_codes");
  TORCH_CHECK(x.scalar_type() == at::kFloat, "symmetric_codes: x must be float32");
  at::NoGradGuard no_grad;
  const double qmax = symmetric_qmax(bits);
  return at::clamp(at::round(x.detach() / row_broadcast(scale, x, "symmetric_codes")), -qmax, qmax);
}

at::Tensor fake_quantize_symmetric(const at::Tensor& x, const at::Tensor& scale, int bits) {
  check_symmetric_bits(bits, "fake_quantize_symmetric");
  TORCH_CHECK(x.scalar_type() == at::kFloat, "fake_quantize_symmetric: x must be float32");
  const at::Tensor s = row_broadcast(scale, x, "fake_quantize_symmetric");
  at::Tensor q, inside;
  {
    at::NoGradGuard no_grad;
    q = symmetric_codes(x, scale, bits) * s;
    if (x.requires_grad()) {
      inside = ((x.detach() / s).abs() <= symmetric_qmax(bits) + 0.5).to(at::kFloat);
    }
  }
  if (!x.requires_grad()) return q;
  return q + (x - x.detach()) * inside;  // straight-through inside the clipping range
}

float symmetric_scale(float lo, float hi, int bits) {
  check_symmetric_bits(bits, "symmetric_scale");
  const float m = std::max(std::abs(lo), std::abs(hi));
  return m > 0 ? m / static_cast<float>(symmetric_qmax(bits)) : 1.0f;
}

at::Tensor weight_scale(const at::Tensor& w, int bits) {
  check_symmetric_bits(bits, "weight_scale");
  TORCH_CHECK(w.dim() == 2, "weight_scale: weight must be [out, in], got ", w.sizes());
  at::NoGradGuard no_grad;
  const at::Tensor m = std::get<0>(w.detach().abs().max(1));
  return at::where(m > 0, m / symmetric_qmax(bits), at::ones_like(m));
}

// ---------------------------------------------------------------- observers

std::pair<float, float> observe_range(const at::Tensor& x, RangeRule rule, double percentile,
                                      int64_t sample_size) {
  at::NoGradGuard no_grad;
  const at::Tensor v = x.detach().reshape({-1});
  if (v.numel() == 0) return {0.0f, 0.0f};
  if (rule != RangeRule::kPercentile) return {v.min().item<float>(), v.max().item<float>()};
  TORCH_CHECK(percentile > 50 && percentile <= 100,
              "observe_range: percentile must be in (50, 100], got ", percentile);
  TORCH_CHECK(sample_size >= 1, "observe_range: sample_size must be >= 1, got ", sample_size);
  at::Tensor s = v;
  if (v.numel() > sample_size) {
    s = v.index_select(0, at::randint(v.numel(), {sample_size}, at::kLong));
  }
  // Nearest-rank percentiles of the sample (kthvalue is a selection, not a full sort).
  const int64_t m = s.numel();
  const auto rank = [&](double p) {
    return std::clamp<int64_t>(static_cast<int64_t>(std::ceil(p / 100.0 * m)), 1, m);
  };
  const float lo = std::get<0>(s.kthvalue(rank(100.0 - percentile))).item<float>();
  const float hi = std::get<0>(s.kthvalue(rank(percentile))).item<float>();
  return {lo, hi};
}

const ObservedRange& RangeObserver::update(ObservedRange& r, const at::Tensor& x) const {
  const auto [lo, hi] = observe_range(x, rule, percentile, sample_size);
  const float m = r.updates == 0 ? 1.0f : static_cast<float>(momentum);
  r.lo = (1 - m) * r.lo + m * lo;
  r.hi = (1 - m) * r.hi + m * hi;
  ++r.updates;
  return r;
}

// ---------------------------------------------------------------- Quantizer

Quantizer::Quantizer(QuantSpec spec) : spec_(std::move(spec)) {
  const QuantSpec& s = spec_;
  // Messages name the spec; TORCH_CHECK builds them only on failure (quantizers are made
  // per point and forward).
  switch (s.scheme) {
    case QuantScheme::kFull:
      TORCH_CHECK(s.bits == 32, "quantizer '", s.to_string(), "': full precision has 32 bits, got ",
                  s.bits);
      break;
    case QuantScheme::kHalf:
      TORCH_CHECK(s.bits == 16, "quantizer '", s.to_string(), "': half precision has 16 bits, got ",
                  s.bits);
      break;
    case QuantScheme::kAffine:
      TORCH_CHECK(s.bits >= 1 && s.bits <= 8, "quantizer '", s.to_string(),
                  "': affine codes have 1..8 bits, got ", s.bits);
      break;
    case QuantScheme::kSymmetric:
      TORCH_CHECK(s.bits >= 2 && s.bits <= 8, "quantizer '", s.to_string(),
                  "': symmetric codes have 2..8 bits, got ", s.bits);
      break;
  }
  if (s.quantized() && s.scheme != QuantScheme::kAffine) {
    TORCH_CHECK(!s.buckets, "quantizer '", s.to_string(), "': TAQ buckets need the affine scheme");
  }
  TORCH_CHECK(s.layout != LayoutRule::kIndexList || !s.quantized() ||
                  (s.scheme == QuantScheme::kAffine && s.bits == 1),
              "quantizer '", s.to_string(),
              "': the index-list layout stores 1-bit affine codes only");
  TORCH_CHECK(s.layout != LayoutRule::kNibble || !s.quantized() ||
                  (s.scheme == QuantScheme::kSymmetric && s.bits == 4),
              "quantizer '", s.to_string(),
              "': the nibble layout stores 4-bit symmetric codes only");
}

void Quantizer::require_symmetric(const char* what) const {
  TORCH_CHECK(spec_.scheme == QuantScheme::kSymmetric, "quantizer '", spec_.to_string(),
              "': ", what, " needs the symmetric scheme");
}

bool Quantizer::needs_degrees() const {
  return spec_.buckets.has_value() && spec_.scheme == QuantScheme::kAffine;
}

RowBits Quantizer::row_bits(const at::Tensor& row_degree, const at::Tensor& population) const {
  const int b = spec_.bits;
  if (!needs_degrees()) return RowBits::uniform(b);
  TORCH_CHECK(row_degree.dim() == 1 && row_degree.scalar_type() == at::kLong,
              "Quantizer::row_bits: row_degree must be [R] int64, got ", row_degree.sizes());
  const DegreeBuckets& taq = *spec_.buckets;
  std::vector<int64_t> upper = taq.upper;
  const int64_t groups = static_cast<int64_t>(taq.bits.size());
  if (taq.quantile()) {
    // Equal-count buckets: bound g is the (g+1)/G quantile of the degree population.
    auto sorted = std::get<0>((population.defined() ? population : row_degree).sort());
    const int64_t r = sorted.numel();
    for (int64_t g = 0; g + 1 < groups && r > 0; ++g) {
      const int64_t idx = std::min(r - 1, (g + 1) * r / groups);
      upper.push_back(sorted[idx].item<int64_t>());
    }
  }
  RowBits rb;
  rb.group_bits.resize(groups);
  for (int64_t g = 0; g < groups; ++g) rb.group_bits[g] = std::min(b, taq.bits[g]);
  // Group of a row: the first bucket whose bound holds, else the last.
  auto bounds = at::tensor(upper.empty() ? std::vector<int64_t>{} : upper, at::kLong);
  at::Tensor group = bounds.numel() == 0 ? at::zeros_like(row_degree)
                                         : at::searchsorted(bounds, row_degree, /*out_int32=*/false,
                                                            /*right=*/false);
  rb.row_group = group.clamp_max(groups - 1).to(at::kByte);
  return rb;
}

QuantOptions Quantizer::options(const at::Tensor& x) const {
  QuantOptions o;
  o.rounding = spec_.rounding;
  if (spec_.column_scales && spec_.scheme == QuantScheme::kAffine) {
    o.column_scale = column_scales(x.detach());
  }
  return o;
}

namespace {

// What packed storage honours: affine codes (or half / full) over min-max ranges.
void check_storable(const QuantSpec& s, const char* what) {
  TORCH_CHECK(s.layout != LayoutRule::kNibble, what, ": quantizer '", s.to_string(),
              "': the nibble layout holds integer codes (Quantizer::store_codes)");
  TORCH_CHECK(s.scheme != QuantScheme::kSymmetric, what, ": quantizer '", s.to_string(),
              "': packed storage and SGQuant fake quantization store affine codes, not "
              "symmetric ones");
  TORCH_CHECK(!s.quantized() || s.scheme == QuantScheme::kHalf || s.range == RangeRule::kMinMax,
              what, ": quantizer '", s.to_string(),
              "': packed storage measures min-max ranges on the values it stores; range ",
              to_string(s.range), " needs an observer (QAT)");
}

PackLayoutChoice layout_choice(const QuantSpec& s) {
  return s.layout == LayoutRule::kBitmap ? PackLayoutChoice::kBitmap : PackLayoutChoice::kAuto;
}

}  // namespace

at::Tensor Quantizer::fake_quantize(const at::Tensor& x, const RowBits& rows) const {
  check_storable(spec_, "fake_quantize");
  if (!spec_.quantized()) return x;
  return qgnn::fake_quantize(x, rows, spec_.granularity, options(x));
}

PackedTensor Quantizer::pack(const at::Tensor& x, const RowBits& rows) const {
  check_storable(spec_, "pack");
  PackedTensor t = PackedTensor::pack(x, rows, spec_.granularity, layout_choice(spec_), options(x));
  TORCH_CHECK(spec_.layout != LayoutRule::kIndexList || t.layout() == PackedLayout::kIndexList ||
                  t.num_rows() == 0,
              "pack: quantizer '", spec_.to_string(),
              "': the index list of this tensor would be larger than its bitmap (use layout=auto)");
  return t;
}

PackedTensor Quantizer::pack_blocks(int64_t rows_n, int64_t cols,
                                    const std::vector<int64_t>& bounds, const RowBits& rows,
                                    const PackedTensor::BlockProducer& produce) const {
  check_storable(spec_, "pack_blocks");
  TORCH_CHECK(!spec_.column_scales, "pack_blocks: quantizer '", spec_.to_string(),
              "': column scales need the whole matrix");
  return PackedTensor::pack_blocks(rows_n, cols, bounds, rows, spec_.granularity, spec_.rounding,
                                   produce);
}

PackedSize Quantizer::packed_size(int64_t rows_n, int64_t cols, const RowBits& rb,
                                  int64_t ones) const {
  PackedSize s;
  const int64_t groups = rb.num_groups();
  const bool several = rb.row_group.defined() && groups > 1;
  std::vector<int64_t> group_rows(groups, 0);
  if (!several) {
    group_rows[0] = rows_n;
  } else {
    auto counts = at::bincount(rb.row_group.to(at::kLong), {}, groups);
    for (int64_t g = 0; g < groups; ++g) group_rows[g] = counts[g].item<int64_t>();
  }
  bool any_params = false, one_bit = true;
  for (int64_t g = 0; g < groups; ++g) {
    s.code_bytes += group_rows[g] * ((cols * rb.group_bits[g] + 7) / 8);
    any_params = any_params || rb.group_bits[g] <= 8;
    one_bit = one_bit && rb.group_bits[g] == 1;
  }
  s.bytes = s.code_bytes;
  const int64_t offsets = several ? 8 * (rows_n + 1) : 0;
  if (several) s.bytes += offsets + rows_n + groups;  // row offsets, row groups, group bits
  if (any_params) {
    const int64_t param_sets = spec_.granularity == Granularity::kRow ? rows_n : groups;
    s.bytes += 8 * param_sets;                     // float32 scale + lo
    if (spec_.column_scales) s.bytes += 4 * cols;  // float32 column scales
  }
  // The choice pack() makes (kIndexList refuses where kAuto keeps the bitmap).
  if (ones >= 0 && one_bit && spec_.layout != LayoutRule::kBitmap &&
      index_list_is_smaller(rows_n, cols, ones, s.code_bytes, several)) {
    // The index list's indices and offsets replace the bitmap's codes and row offsets.
    const int64_t index = index_list_code_bytes(rows_n, cols, ones);
    s.bytes += index - s.code_bytes - offsets;
    s.code_bytes = index;
    s.layout = PackedLayout::kIndexList;
  }
  return s;
}

float Quantizer::scale(float lo, float hi) const {
  require_symmetric("scale");
  return symmetric_scale(lo, hi, spec_.bits);
}

at::Tensor Quantizer::weight_scale(const at::Tensor& w) const {
  require_symmetric("weight_scale");
  return qgnn::weight_scale(w, spec_.bits);
}

at::Tensor Quantizer::codes(const at::Tensor& x, const at::Tensor& scale) const {
  require_symmetric("codes");
  return symmetric_codes(x, scale, spec_.bits);
}

at::Tensor Quantizer::store_codes(const at::Tensor& codes) const {
  require_symmetric("store_codes");
  return spec_.layout == LayoutRule::kNibble ? pack_int4(codes) : codes;
}

at::Tensor Quantizer::fake_quantize(const at::Tensor& x, const at::Tensor& scale) const {
  require_symmetric("fake_quantize with a scale");
  return fake_quantize_symmetric(x, scale, spec_.bits);
}

}  // namespace qgnn
