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
RowBits embedding_row_bits(const BitPolicy& policy, const QuantPoint& p,
                           const GraphOperators& ops) {
  return policy.buckets(p.role)
             ? policy.row_bits(p, embedding_row_degree(ops), ops.degree_population())
             : RowBits::uniform(policy.bits(p));
}

// Row grouping of an attention point over the edges of g; the per-edge in-degree table
// ([E'] int64) is built only when TAQ needs it.
// population: attention_degree_population() of the graph (undefined: the rows' own).
RowBits attention_row_bits(const BitPolicy& policy, const QuantPoint& p,
                           const at::Tensor& row_indptr, const at::Tensor& population) {
  return policy.buckets(p.role) ? policy.row_bits(p, attention_row_degree(row_indptr), population)
                                : RowBits::uniform(policy.bits(p));
}

// The options a policy gives the points of a role, for tensor x (column scales are
// measured on x itself).
QuantOptions point_options(const BitPolicy& policy, const QuantPoint& p, const at::Tensor& x) {
  QuantOptions o;
  o.rounding = policy.rounding(p);
  if (policy.column_scales(p)) o.column_scale = column_scales(x.detach());
  return o;
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

bool all_rows_one_group(const RowBits& rb) {
  return !rb.row_group.defined() || rb.num_groups() == 1;
}

// Bytes of one row's codes at `bits`.
int64_t row_code_bytes(int64_t cols, int bits) { return (cols * bits + 7) / 8; }

}  // namespace

PackedSize packed_size(int64_t rows, int64_t cols, const RowBits& rb, Granularity gran) {
  PackedSize s;
  const int64_t groups = rb.num_groups();
  std::vector<int64_t> group_rows(groups, 0);
  if (all_rows_one_group(rb)) {
    group_rows[0] = rows;
  } else {
    auto counts = at::bincount(rb.row_group.to(at::kLong), {}, groups);
    for (int64_t g = 0; g < groups; ++g) group_rows[g] = counts[g].item<int64_t>();
  }
  bool any_params = false;
  for (int64_t g = 0; g < groups; ++g) {
    s.code_bytes += group_rows[g] * row_code_bytes(cols, rb.group_bits[g]);
    any_params = any_params || rb.group_bits[g] <= 8;
  }
  s.bytes = s.code_bytes;
  if (rb.row_group.defined() && groups > 1) {
    s.bytes += 8 * (rows + 1) + rows + groups;  // row offsets, row groups, group bits
  }
  if (any_params) {
    const int64_t param_sets = gran == Granularity::kRow ? rows : groups;
    s.bytes += 8 * param_sets;  // float32 scale + lo
  }
  return s;
}

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
  const QuantPoint p{layer, QuantRole::kEmbedding};
  if (policy_.bits(p) == 32) return h;
  const at::Tensor& storage = h.is_sparse() ? h.sparse().weights() : h.dense();
  const bool constant = storage.defined() && !storage.requires_grad();
  if (constant) {
    auto it = cache_.find(layer);
    if (it != cache_.end() && it->second.source.is_same(storage)) return it->second.value;
  }
  const RowBits rb = embedding_row_bits(policy_, p, ops);
  const at::Tensor x = h.to_dense();
  at::Tensor q = fake_quantize(x, rb, policy_.granularity(QuantRole::kEmbedding),
                               point_options(policy_, p, x));
  NodeFeatures out = h.is_sparse() ? NodeFeatures::from_dense(q, 1.0) : NodeFeatures(q);
  if (constant) cache_[layer] = Cached{storage, out};
  return out;
}

at::Tensor FakeQuantHook::attention(int64_t layer, const at::Tensor& alpha, const CsrGraph& g) {
  const QuantPoint p{layer, QuantRole::kAttention};
  if (policy_.bits(p) == 32) return alpha;
  const RowBits rb = attention_row_bits(policy_, p, g.indptr(), attention_population_);
  const bool flat = alpha.dim() == 1;
  at::Tensor a2 = flat ? alpha.unsqueeze(1) : alpha;
  at::Tensor q = fake_quantize(a2, rb, policy_.granularity(QuantRole::kAttention),
                               point_options(policy_, p, a2));
  return flat ? q.squeeze(1) : q;
}

namespace {

// What a hook keeps from begin_forward: the population attention TAQ quantiles are taken
// over (undefined without attention TAQ or on a full graph).
at::Tensor attention_population_for(const BitPolicy& policy, const GraphOperators& ops) {
  return policy.buckets(QuantRole::kAttention) ? attention_degree_population(ops) : at::Tensor();
}

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
    stored_[{layer, false}] = h.packed()->nbytes();
    return h;
  }
  if (policy_.bits(p) == 32) {
    stored_[{layer, false}] = 4 * h.num_rows() * h.num_cols();
    return h;
  }
  const RowBits rb = embedding_row_bits(policy_, p, ops);
  // Hidden embeddings stay bitmaps: their stored bytes then follow from the shapes
  // (memory_report); only the input's layout depends on its values (InputCodeStats).
  const at::Tensor x = h.to_dense();
  auto packed = std::make_shared<const PackedTensor>(
      PackedTensor::pack(x, rb, policy_.granularity(QuantRole::kEmbedding),
                         layer == 0 ? PackLayoutChoice::kAuto : PackLayoutChoice::kBitmap,
                         point_options(policy_, p, x)));
  stored_[{layer, false}] = packed->nbytes();
  return NodeFeatures(packed);
}

at::Tensor PackedInferenceHook::attention(int64_t layer, const at::Tensor& alpha,
                                          const CsrGraph& g) {
  const QuantPoint p{layer, QuantRole::kAttention};
  if (policy_.bits(p) == 32) {
    stored_[{layer, true}] = 4 * alpha.numel();
    return alpha;
  }
  const RowBits rb = attention_row_bits(policy_, p, g.indptr(), attention_population_);
  const bool flat = alpha.dim() == 1;
  const at::Tensor a2 = flat ? alpha.unsqueeze(1) : alpha;
  const PackedTensor packed =
      PackedTensor::pack(a2, rb, policy_.granularity(QuantRole::kAttention),
                         PackLayoutChoice::kBitmap, point_options(policy_, p, a2));
  stored_[{layer, true}] = packed.nbytes();
  at::Tensor out = packed.decode();
  return flat ? out.squeeze(1) : out;
}

std::shared_ptr<const PackedTensor> PackedInferenceHook::pack_embedding(
    int64_t layer, const GraphOperators& ops, int64_t cols, const std::vector<int64_t>& bounds,
    const std::function<void(int64_t block, float* out)>& produce) {
  const QuantPoint p{layer, QuantRole::kEmbedding};
  if (policy_.bits(p) == 32 || policy_.column_scales(p)) return nullptr;
  const RowBits rb = embedding_row_bits(policy_, p, ops);
  auto packed = std::make_shared<const PackedTensor>(PackedTensor::pack_blocks(
      ops.num_nodes(), cols, bounds, rb, policy_.granularity(QuantRole::kEmbedding),
      policy_.rounding(p), produce));
  stored_[{layer, false}] = packed->nbytes();
  return packed;
}

std::shared_ptr<const PackedTensor> PackedInferenceHook::pack_attention(
    int64_t layer, const at::Tensor& row_indptr, int64_t heads, const std::vector<int64_t>& bounds,
    const std::function<void(int64_t block, float* out)>& produce) {
  const QuantPoint p{layer, QuantRole::kAttention};
  if (policy_.bits(p) == 32 || policy_.column_scales(p)) return nullptr;
  const RowBits rb = attention_row_bits(policy_, p, row_indptr, attention_population_);
  auto packed = std::make_shared<const PackedTensor>(PackedTensor::pack_blocks(
      row_indptr[row_indptr.numel() - 1].item<int64_t>(), heads, bounds, rb,
      policy_.granularity(QuantRole::kAttention), policy_.rounding(p), produce));
  stored_[{layer, true}] = packed->nbytes();
  return packed;
}

std::shared_ptr<const PackedTensor> pack_input(const NodeFeatures& x, const GraphOperators& ops,
                                               const BitPolicy& policy) {
  const QuantPoint p{0, QuantRole::kEmbedding};
  const RowBits rb = embedding_row_bits(policy, p, ops);
  const at::Tensor d = x.to_dense();
  return std::make_shared<const PackedTensor>(
      PackedTensor::pack(d, rb, policy.granularity(QuantRole::kEmbedding), PackLayoutChoice::kAuto,
                         point_options(policy, p, d)));
}

MemoryReport memory_report(const std::vector<QuantPointInfo>& points, const GraphOperators& ops,
                           const BitPolicy& policy, const InputCodeStats* input) {
  MemoryReport r;
  for (const QuantPointInfo& info : points) {
    const QuantRole role = info.attention ? QuantRole::kAttention : QuantRole::kEmbedding;
    const QuantPoint p{info.layer, role};
    // attention_row_bits builds the per-edge degree table only under TAQ.
    const RowBits rb = info.attention ? attention_row_bits(policy, p, ops.self_loops_indptr(),
                                                           attention_degree_population(ops))
                                      : embedding_row_bits(policy, p, ops);
    PointMemory m;
    m.point = info;
    m.bits = policy.bits(p);
    m.values = info.rows * info.cols;
    m.fp32_bytes = 4 * m.values;
    const Granularity gran = policy.granularity(role);
    PackedSize s = packed_size(info.rows, info.cols, rb, gran);
    const bool cols =
        policy.column_scales(p) &&
        std::any_of(rb.group_bits.begin(), rb.group_bits.end(), [](int b) { return b <= 8; });
    if (cols) s.bytes += 4 * info.cols;  // the column scales (float32 [F])
    m.dense_bytes = s.bytes;
    m.dense_code_bytes = s.code_bytes;
    m.stored_bytes = s.bytes;
    m.stored_code_bytes = s.code_bytes;
    const bool one_bit =
        std::all_of(rb.group_bits.begin(), rb.group_bits.end(), [](int b) { return b == 1; });
    if (input != nullptr && info.layer == 0 && !info.attention) {
      TORCH_CHECK(input->num_rows() == info.rows && input->num_cols() == info.cols,
                  "memory_report: input statistics are for [", input->num_rows(), ", ",
                  input->num_cols(), "] features, the model's input point is [", info.rows, ", ",
                  info.cols, "]");
      const bool several_groups = rb.row_group.defined() && rb.num_groups() > 1;
      const int64_t ones = one_bit ? input->ones(rb, gran, policy.rounding(p), cols) : 0;
      if (one_bit &&
          index_list_is_smaller(info.rows, info.cols, ones, s.code_bytes, several_groups)) {
        // The layout PackedTensor::pack chooses; its offsets replace the bitmap's.
        const int64_t index = index_list_code_bytes(info.rows, info.cols, ones);
        m.layout = PackedLayout::kIndexList;
        m.stored_bytes =
            s.bytes - s.code_bytes - (several_groups ? 8 * (info.rows + 1) : 0) + index;
        m.stored_code_bytes = index;
      }
    }
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
