#include "qgnn/quant/quant_hooks.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>

#include "quant/cpu/pack_kernel.h"

namespace qgnn {

namespace {

// The 1-bit code of v over [lo, hi] is 1 iff (v - lo) / scale > 1/2 (packed_tensor.h:
// round half to even sends 1/2 to 0, anything above to 1 after the clamp), evaluated in
// float32 exactly as the pack kernels do; with Rounding::kNonzero and lo == 0 every
// non-zero v is a 1 as well.
struct OneBitRange {
  float lo = 0.0f, scale = 1.0f;
  bool nonzero = false;
  OneBitRange(float l, float h, Rounding r)
      : lo(l),
        scale(quant_cpu::affine_scale(l, h, 1)),
        nonzero(r == Rounding::kNonzero && l == 0.0f) {}
  bool one(float v) const { return (v - lo) / scale > 0.5f || (nonzero && v != 0.0f); }
};

// Row grouping of an embedding point; the in-degree vector only when TAQ needs it.
RowBits embedding_row_bits(const Quantizer& q, const GraphOperators& ops) {
  return q.needs_degrees() ? q.row_bits(embedding_row_degree(ops), ops.degree_population())
                           : q.row_bits({});
}

// Row grouping of an attention point over the edges of g; the per-edge in-degree table
// ([E'] int64) is built only when TAQ needs it.
// population: attention_degree_population() of the graph (undefined: the rows' own).
RowBits attention_row_bits(const Quantizer& q, const at::Tensor& row_indptr,
                           const at::Tensor& population) {
  return q.needs_degrees() ? q.row_bits(attention_row_degree(row_indptr), population)
                           : q.row_bits({});
}

// Rows of the input as the statistics read them: dense rows, or CSR rows whose missing
// entries are zeros.
struct InputRows {
  int64_t n = 0, f = 0;
  const float* dense = nullptr;     // [N, F] contiguous
  const int64_t* indptr = nullptr;  // sparse: [N + 1]
  const float* values = nullptr;    // sparse: [nnz] or nullptr (ones)

  // fn(v) for every stored value of row r; returns the number of implicit zeros.
  template <class Fn>
  int64_t for_each(int64_t r, const Fn& fn) const {
    if (dense != nullptr) {
      const float* xr = dense + r * f;
      for (int64_t k = 0; k < f; ++k) fn(xr[k]);
      return 0;
    }
    const int64_t b = indptr[r], e = indptr[r + 1];
    for (int64_t i = b; i < e; ++i) fn(values != nullptr ? values[i] : 1.0f);
    return f - (e - b);
  }

  int64_t ones(int64_t r, const OneBitRange& q) const {
    int64_t c = 0;
    const int64_t zeros = for_each(r, [&](float v) { c += q.one(v) ? 1 : 0; });
    return zeros > 0 && q.one(0.0f) ? c + zeros : c;
  }
};

}  // namespace

struct InputCodeStats::State {
  // Whole features (constructor): the values, for per-tensor and per-bucket ranges.
  NodeFeatures x;
  at::Tensor dense;  // contiguous copy or x.dense() itself
  InputRows rows;
  // Per row: range (implicit zeros included) and 1-codes under the row's own range.
  std::vector<float> row_min, row_max;
  int64_t row_ones[2] = {0, 0};  // by Rounding: kNearest, kNonzero
  std::mutex mu;                 // guards the caches below
  std::optional<int64_t> tensor_ones[2];
  // (row groups uint8 [N], rounding, ones)
  std::vector<std::tuple<at::Tensor, Rounding, int64_t>> bucket_ones;
  // The statistics of x / column_scales(x) (policies with cols=on), built on first use.
  std::shared_ptr<InputCodeStats> column_scaled;

  // Appends the per-row statistics of rows [0, r.n) of r; throws on non-finite values.
  void add_rows(const InputRows& r, int64_t first_row) {
    const size_t base = row_min.size();
    row_min.resize(base + static_cast<size_t>(r.n));
    row_max.resize(base + static_cast<size_t>(r.n));
    std::atomic<int64_t> bad{r.n}, ones{0}, ones_nz{0};
    at::parallel_for(0, r.n, quant_cpu::row_grain(r.f), [&](int64_t rb, int64_t re) {
      int64_t local = 0, local_nz = 0;
      for (int64_t i = rb; i < re; ++i) {
        const float inf = std::numeric_limits<float>::infinity();
        float mn = inf, mx = -inf;
        bool finite = true;
        const int64_t zeros = r.for_each(i, [&](float v) {
          finite = finite && std::isfinite(v);
          mn = std::min(mn, v);
          mx = std::max(mx, v);
        });
        if (zeros > 0) {
          mn = std::min(mn, 0.0f);
          mx = std::max(mx, 0.0f);
        }
        if (!finite) {
          int64_t cur = bad.load();
          while (i < cur && !bad.compare_exchange_weak(cur, i)) {
          }
          continue;
        }
        if (r.f == 0) mn = mx = 0.0f;
        row_min[base + static_cast<size_t>(i)] = mn;
        row_max[base + static_cast<size_t>(i)] = mx;
        if (r.f > 0) {
          local += r.ones(i, OneBitRange(mn, mx, Rounding::kNearest));
          local_nz += r.ones(i, OneBitRange(mn, mx, Rounding::kNonzero));
        }
      }
      ones += local;
      ones_nz += local_nz;
    });
    TORCH_CHECK(bad.load() == r.n, "InputCodeStats: x must be finite, row ", first_row + bad.load(),
                " holds NaN or infinity");
    row_ones[0] += ones.load();
    row_ones[1] += ones_nz.load();
  }

  // 1-codes of the rows with group id g (all rows when group is null) over [lo, hi].
  int64_t count(const uint8_t* group, int g, float lo, float hi, Rounding rounding) const {
    const OneBitRange q(lo, hi, rounding);
    std::atomic<int64_t> total{0};
    at::parallel_for(0, rows.n, quant_cpu::row_grain(rows.f), [&](int64_t rb, int64_t re) {
      int64_t local = 0;
      for (int64_t i = rb; i < re; ++i) {
        if (group == nullptr || group[i] == g) local += rows.ones(i, q);
      }
      total += local;
    });
    return total.load();
  }
};

InputCodeStats::InputCodeStats(const NodeFeatures& x) {
  TORCH_CHECK(x.defined(), "InputCodeStats: x is undefined");
  TORCH_CHECK(!x.is_packed(),
              "InputCodeStats: x is packed; build the statistics from the float features");
  state_ = std::make_shared<State>();
  State& st = *state_;
  st.x = x;
  rows_ = x.num_rows();
  cols_ = x.num_cols();
  st.rows.n = rows_;
  st.rows.f = cols_;
  if (x.is_sparse()) {
    const CsrGraph& g = x.sparse();
    st.rows.indptr = g.indptr().data_ptr<int64_t>();
    if (g.has_weights()) {
      st.dense = g.weights().to(at::kFloat).contiguous();  // kept alive with the pointer
      st.rows.values = st.dense.data_ptr<float>();
    }
  } else {
    st.dense = x.dense().detach().to(at::kFloat).contiguous();
    st.rows.dense = st.dense.data_ptr<float>();
  }
  st.add_rows(st.rows, 0);
}

void InputCodeStats::append_rows(const at::Tensor& rows) {
  TORCH_CHECK(rows.defined() && rows.dim() == 2 && rows.scalar_type() == at::kFloat &&
                  rows.device().is_cpu(),
              "InputCodeStats::append_rows: rows must be an [n, F] float32 CPU tensor");
  if (!state_) {
    state_ = std::make_shared<State>();
    cols_ = rows.size(1);
  }
  TORCH_CHECK(!state_->x.defined(),
              "InputCodeStats::append_rows: the statistics were built from whole features");
  TORCH_CHECK(rows.size(1) == cols_, "InputCodeStats::append_rows: rows have ", rows.size(1),
              " columns, earlier rows ", cols_);
  const at::Tensor c = rows.contiguous();
  InputRows r;
  r.n = c.size(0);
  r.f = cols_;
  r.dense = c.data_ptr<float>();
  state_->add_rows(r, rows_);
  rows_ += r.n;
}

int64_t InputCodeStats::ones(const RowBits& rb, Granularity gran, Rounding rounding,
                             bool column_scaled) const {
  if (!state_ || rows_ == 0 || cols_ == 0) return 0;
  State& st = *state_;
  if (column_scaled) {
    TORCH_CHECK(st.x.defined(),
                "InputCodeStats::ones: statistics built with append_rows() cannot measure "
                "column-scaled codes (cols=on)");
    std::shared_ptr<InputCodeStats> scaled;
    {
      std::lock_guard<std::mutex> lock(st.mu);
      if (!st.column_scaled) {
        const at::Tensor x = st.x.to_dense().detach();
        st.column_scaled =
            std::make_shared<InputCodeStats>(NodeFeatures(x / column_scales(x).unsqueeze(0)));
      }
      scaled = st.column_scaled;
    }
    return scaled->ones(rb, gran, rounding, false);
  }
  const int ri = rounding == Rounding::kNonzero ? 1 : 0;
  if (gran == Granularity::kRow) return st.row_ones[ri];
  TORCH_CHECK(st.x.defined(),
              "InputCodeStats::ones: statistics built with append_rows() know "
              "per-row ranges only (Granularity::kRow)");
  const bool grouped = rb.row_group.defined() && rb.num_groups() > 1;
  std::lock_guard<std::mutex> lock(st.mu);
  if (gran == Granularity::kTensor || !grouped) {
    if (!st.tensor_ones[ri]) {
      const float lo = *std::min_element(st.row_min.begin(), st.row_min.end());
      const float hi = *std::max_element(st.row_max.begin(), st.row_max.end());
      st.tensor_ones[ri] = st.count(nullptr, 0, lo, hi, rounding);
    }
    return *st.tensor_ones[ri];
  }
  TORCH_CHECK(rb.row_group.dim() == 1 && rb.row_group.size(0) == rows_,
              "InputCodeStats::ones: rows.row_group must have N = ", rows_, " entries, got ",
              rb.row_group.sizes());
  const at::Tensor group = rb.row_group.to(at::kByte).contiguous();
  for (const auto& [key, r, ones] : st.bucket_ones) {
    if (r == rounding && at::equal(key, group)) return ones;
  }
  const uint8_t* gp = group.data_ptr<uint8_t>();
  const int64_t g = rb.num_groups();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> lo(static_cast<size_t>(g), inf), hi(static_cast<size_t>(g), -inf);
  for (int64_t r = 0; r < rows_; ++r) {
    lo[gp[r]] = std::min(lo[gp[r]], st.row_min[static_cast<size_t>(r)]);
    hi[gp[r]] = std::max(hi[gp[r]], st.row_max[static_cast<size_t>(r)]);
  }
  int64_t ones = 0;
  for (int64_t i = 0; i < g; ++i) {
    if (lo[i] <= hi[i]) ones += st.count(gp, static_cast<int>(i), lo[i], hi[i], rounding);
  }
  if (st.bucket_ones.size() >= 16) st.bucket_ones.erase(st.bucket_ones.begin());
  st.bucket_ones.emplace_back(group, rounding, ones);
  return ones;
}

at::Tensor embedding_row_degree(const GraphOperators& ops) { return ops.in_degree(); }

at::Tensor attention_degree_population(const GraphOperators& ops) {
  if (!ops.is_block()) return at::Tensor();
  const at::Tensor& d = ops.loop_degree_population();
  return at::repeat_interleave(d, d);
}

at::Tensor attention_row_degree(const CsrGraph& g) { return attention_row_degree(g.indptr()); }

at::Tensor attention_row_degree(const at::Tensor& row_indptr) {
  TORCH_CHECK(
      row_indptr.dim() == 1 && row_indptr.numel() >= 1 && row_indptr.scalar_type() == at::kLong,
      "attention_row_degree: row_indptr must be a [R + 1] int64 tensor");
  const int64_t r = row_indptr.numel() - 1;
  const at::Tensor deg = row_indptr.narrow(0, 1, r) - row_indptr.narrow(0, 0, r);
  return at::repeat_interleave(deg, deg);
}

FakeQuantHook::FakeQuantHook(BitPolicy policy) : policy_(std::move(policy)) {}

NodeFeatures FakeQuantHook::embedding(int64_t layer, const NodeFeatures& h,
                                      const GraphOperators& ops) {
  const Quantizer q = policy_.quantizer({layer, QuantRole::kEmbedding});
  if (!q.spec().quantized()) return h;
  const at::Tensor& storage = h.is_sparse() ? h.sparse().weights() : h.dense();
  const bool constant = storage.defined() && !storage.requires_grad();
  if (constant) {
    auto it = cache_.find(layer);
    if (it != cache_.end() && it->second.source.is_same(storage)) return it->second.value;
  }
  const at::Tensor x = h.to_dense();
  const at::Tensor xq = q.fake_quantize(x, embedding_row_bits(q, ops));
  NodeFeatures out = h.is_sparse() ? NodeFeatures::from_dense(xq, 1.0) : NodeFeatures(xq);
  if (constant) cache_[layer] = Cached{storage, out};
  return out;
}

at::Tensor FakeQuantHook::attention(int64_t layer, const at::Tensor& alpha, const CsrGraph& g) {
  const Quantizer q = policy_.quantizer({layer, QuantRole::kAttention});
  if (!q.spec().quantized()) return alpha;
  const bool flat = alpha.dim() == 1;
  const at::Tensor a2 = flat ? alpha.unsqueeze(1) : alpha;
  const at::Tensor aq =
      q.fake_quantize(a2, attention_row_bits(q, g.indptr(), attention_population_));
  return flat ? aq.squeeze(1) : aq;
}

namespace {

// What a hook keeps from begin_forward: the population attention TAQ quantiles are taken
// over (undefined without attention TAQ or on a full graph).
at::Tensor attention_population_for(const BitPolicy& policy, const GraphOperators& ops) {
  // Any attention point under TAQ needs it; the role's spec answers for layers without
  // their own clause, and layer clauses are few.
  for (const QuantPoint& p : policy.distinct_points()) {
    if (p.role == QuantRole::kAttention && policy.quantizer(p).needs_degrees()) {
      return attention_degree_population(ops);
    }
  }
  return at::Tensor();
}

// What a point under packed inference holds at full precision: 4 bytes per value.
int64_t fp32_bytes(int64_t rows, int64_t cols) { return 4 * rows * cols; }

}  // namespace

void FakeQuantHook::begin_forward(const GraphOperators& ops, bool /*training*/) {
  attention_population_ = attention_population_for(policy_, ops);
}

PackedInferenceHook::PackedInferenceHook(BitPolicy policy) : policy_(std::move(policy)) {}

void PackedInferenceHook::begin_forward(const GraphOperators& ops, bool /*training*/) {
  attention_population_ = attention_population_for(policy_, ops);
}

NodeFeatures PackedInferenceHook::embedding(int64_t layer, const NodeFeatures& h,
                                            const GraphOperators& ops) {
  const QuantPoint p{layer, QuantRole::kEmbedding};
  if (h.is_packed()) {
    stored_[p] = h.packed()->nbytes();
    return h;
  }
  const Quantizer q = policy_.quantizer(p);
  if (!q.spec().quantized()) {
    stored_[p] = fp32_bytes(h.num_rows(), h.num_cols());
    return h;
  }
  auto packed =
      std::make_shared<const PackedTensor>(q.pack(h.to_dense(), embedding_row_bits(q, ops)));
  stored_[p] = packed->nbytes();
  return NodeFeatures(packed);
}

at::Tensor PackedInferenceHook::attention(int64_t layer, const at::Tensor& alpha,
                                          const CsrGraph& g) {
  const QuantPoint p{layer, QuantRole::kAttention};
  const Quantizer q = policy_.quantizer(p);
  if (!q.spec().quantized()) {
    stored_[p] = 4 * alpha.numel();
    return alpha;
  }
  const bool flat = alpha.dim() == 1;
  const at::Tensor a2 = flat ? alpha.unsqueeze(1) : alpha;
  const PackedTensor packed = q.pack(a2, attention_row_bits(q, g.indptr(), attention_population_));
  stored_[p] = packed.nbytes();
  at::Tensor out = packed.decode();
  return flat ? out.squeeze(1) : out;
}

std::shared_ptr<const PackedTensor> PackedInferenceHook::pack_embedding(
    int64_t layer, const GraphOperators& ops, int64_t cols, const std::vector<int64_t>& bounds,
    const std::function<void(int64_t block, float* out)>& produce) {
  const QuantPoint p{layer, QuantRole::kEmbedding};
  const Quantizer q = policy_.quantizer(p);
  // Block by block is a bitmap without column scales; other specs take the whole matrix.
  if (!q.spec().quantized() || q.spec().column_scales || q.spec().layout != LayoutRule::kBitmap) {
    return nullptr;
  }
  auto packed = std::make_shared<const PackedTensor>(
      q.pack_blocks(ops.num_nodes(), cols, bounds, embedding_row_bits(q, ops), produce));
  stored_[p] = packed->nbytes();
  return packed;
}

std::shared_ptr<const PackedTensor> PackedInferenceHook::pack_attention(
    int64_t layer, const at::Tensor& row_indptr, int64_t heads, const std::vector<int64_t>& bounds,
    const std::function<void(int64_t block, float* out)>& produce) {
  const QuantPoint p{layer, QuantRole::kAttention};
  const Quantizer q = policy_.quantizer(p);
  if (!q.spec().quantized() || q.spec().column_scales || q.spec().layout != LayoutRule::kBitmap) {
    return nullptr;
  }
  auto packed = std::make_shared<const PackedTensor>(
      q.pack_blocks(row_indptr[row_indptr.numel() - 1].item<int64_t>(), heads, bounds,
                    attention_row_bits(q, row_indptr, attention_population_), produce));
  stored_[p] = packed->nbytes();
  return packed;
}

std::shared_ptr<const PackedTensor> pack_input(const NodeFeatures& x, const GraphOperators& ops,
                                               const BitPolicy& policy) {
  const Quantizer q = policy.quantizer({0, QuantRole::kEmbedding});
  return std::make_shared<const PackedTensor>(q.pack(x.to_dense(), embedding_row_bits(q, ops)));
}

MemoryReport memory_report(const std::vector<QuantPointInfo>& points, const GraphOperators& ops,
                           const BitPolicy& policy, const InputCodeStats* input) {
  MemoryReport r;
  for (const QuantPointInfo& info : points) {
    const QuantPoint& p = info.point;
    const bool attention = p.role == QuantRole::kAttention;
    const Quantizer q = policy.quantizer(p);
    // attention_row_bits builds the per-edge degree table only under TAQ.
    const RowBits rb =
        attention ? attention_row_bits(q, ops.self_loops_indptr(), attention_degree_population(ops))
                  : embedding_row_bits(q, ops);
    PointMemory m;
    m.info = info;
    m.bits = q.spec().bits;
    m.values = info.rows * info.cols;
    m.fp32_bytes = fp32_bytes(info.rows, info.cols);
    const PackedSize dense = q.packed_size(info.rows, info.cols, rb);
    PackedSize stored = dense;
    const bool input_point = p.layer == 0 && p.role == QuantRole::kEmbedding;
    if (input != nullptr && input_point) {
      TORCH_CHECK(input->num_rows() == info.rows && input->num_cols() == info.cols,
                  "memory_report: input statistics are for [", input->num_rows(), ", ",
                  input->num_cols(), "] features, the model's input point is [", info.rows, ", ",
                  info.cols, "]");
      const bool one_bit =
          std::all_of(rb.group_bits.begin(), rb.group_bits.end(), [](int b) { return b == 1; });
      if (one_bit && q.spec().layout != LayoutRule::kBitmap) {
        const QuantSpec& s = q.spec();
        const int64_t ones = input->ones(rb, s.granularity, s.rounding, s.column_scales);
        stored = q.packed_size(info.rows, info.cols, rb, ones);  // the layout pack() chooses
      }
    }
    m.dense_bytes = dense.bytes;
    m.dense_code_bytes = dense.code_bytes;
    m.layout = stored.layout;
    m.stored_bytes = stored.bytes;
    m.stored_code_bytes = stored.code_bytes;
    r.values += m.values;
    r.fp32_bytes += m.fp32_bytes;
    r.dense_bytes += m.dense_bytes;
    r.dense_code_bytes += m.dense_code_bytes;
    r.stored_bytes += m.stored_bytes;
    r.stored_code_bytes += m.stored_code_bytes;
    r.points.push_back(m);
  }
  return r;
}

}  // namespace qgnn
