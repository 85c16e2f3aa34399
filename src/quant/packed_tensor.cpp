#include "qgnn/quant/packed_tensor.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "quant/cpu/pack_kernel.h"

namespace qgnn {

bool is_valid_bits(int bits) { return (bits >= 1 && bits <= 8) || bits == 16 || bits == 32; }

namespace {

using quant_cpu::affine_scale;
using quant_cpu::Kernels;
using quant_cpu::row_bytes;

// 1-bits in nbytes bytes.
int64_t count_ones(const uint8_t* p, int64_t nbytes) {
  int64_t c = 0, i = 0;
  for (; i + 8 <= nbytes; i += 8) {
    uint64_t u;
    std::memcpy(&u, p + i, 8);
    c += __builtin_popcountll(u);
  }
  for (; i < nbytes; ++i) c += __builtin_popcount(p[i]);
  return c;
}

// Positions of the 1-bits of a row's bitmap (LSB-first), ascending; returns their count.
template <class T>
int64_t bitmap_to_indices(const uint8_t* p, int64_t nbytes, T* out) {
  int64_t n = 0, i = 0;
  for (; i + 8 <= nbytes; i += 8) {
    uint64_t u;
    std::memcpy(&u, p + i, 8);
    while (u != 0) {
      out[n++] = static_cast<T>(8 * i + __builtin_ctzll(u));
      u &= u - 1;
    }
  }
  for (; i < nbytes; ++i) {
    unsigned u = p[i];
    while (u != 0) {
      out[n++] = static_cast<T>(8 * i + __builtin_ctz(u));
      u &= u - 1;
    }
  }
  return n;
}

// Sets the bits of a zeroed row bitmap at `count` column indices.
template <class T>
void indices_to_bitmap(const T* idx, int64_t count, uint8_t* p) {
  for (int64_t i = 0; i < count; ++i) {
    const int64_t k = idx[i];
    p[k >> 3] = static_cast<uint8_t>(p[k >> 3] | (1u << (k & 7)));
  }
}

// Row r's 1-codes of a 1-bit tensor of either layout, written into a zeroed bitmap row.
void row_to_bitmap(const PackedView& v, int64_t r, uint8_t* out) {
  if (!v.index_list) {
    std::memcpy(out, v.data(r), static_cast<size_t>(row_bytes(v.cols, 1)));
    return;
  }
  const int64_t b = v.idx_offset[r], e = v.idx_offset[r + 1];
  if (v.idx16 != nullptr)
    indices_to_bitmap(v.idx16 + b, e - b, out);
  else
    indices_to_bitmap(v.idx32 + b, e - b, out);
}

// The validated quantization plan of one call: row grouping, bits, parameter slots.
struct Plan {
  int64_t n = 0, f = 0;
  std::vector<int> gbits;
  at::Tensor group;  // uint8 [N] contiguous, or undefined (single group)
  const uint8_t* gp = nullptr;
  Granularity gran = Granularity::kRow;
  bool any_quantized = false;  // some group has <= 8 bits
  int64_t num_params = 0;      // P

  int bits(int64_t r) const { return gp != nullptr ? gbits[gp[r]] : gbits[0]; }
  int64_t param_index(int64_t r) const {
    return gran == Granularity::kRow ? r : (gp != nullptr ? gp[r] : 0);
  }
};

Plan make_plan(const char* fn, int64_t n, int64_t f, const RowBits& rows, Granularity gran) {
  TORCH_CHECK(n >= 0 && f >= 0, fn, ": shape must be non-negative, got [", n, ", ", f, "]");
  Plan p;
  p.n = n;
  p.f = f;
  p.gran = gran;
  const int64_t g = rows.num_groups();
  TORCH_CHECK(g >= 1 && g <= 256, fn, ": rows.group_bits must hold 1 to 256 groups, got ", g);
  for (int64_t i = 0; i < g; ++i) {
    const int b = rows.group_bits[static_cast<size_t>(i)];
    TORCH_CHECK(is_valid_bits(b), fn, ": rows.group_bits[", i, "] must be in {1..8, 16, 32}, got ",
                b);
    p.any_quantized = p.any_quantized || b <= 8;
  }
  p.gbits = rows.group_bits;
  if (rows.row_group.defined()) {
    const at::Tensor& rg = rows.row_group;
    TORCH_CHECK(rg.dim() == 1 && rg.size(0) == p.n && rg.device().is_cpu() &&
                    at::isIntegralType(rg.scalar_type(), /*includeBool=*/false),
                fn, ": rows.row_group must be an integer [N = ", p.n, "] CPU tensor, got ",
                rg.sizes(), " ", rg.scalar_type());
    if (p.n > 0) {
      const int64_t mn = rg.min().item<int64_t>(), mx = rg.max().item<int64_t>();
      TORCH_CHECK(mn >= 0 && mx < g, fn, ": rows.row_group values must be in [0, ", g,
                  "), got a value ", mn < 0 ? mn : mx);
    }
    if (g > 1) {
      p.group = rg.to(at::kByte).contiguous();
      p.gp = p.group.data_ptr<uint8_t>();
    }
  } else {
    TORCH_CHECK(g == 1, fn, ": rows.row_group is undefined but rows.group_bits has ", g, " groups");
  }
  if (p.any_quantized) p.num_params = gran == Granularity::kRow ? p.n : g;
  return p;
}

Plan make_plan(const char* fn, const at::Tensor& x, const RowBits& rows, Granularity gran) {
  TORCH_CHECK(x.defined(), fn, ": x is undefined");
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.device().is_cpu(), fn,
              ": x must be a [N, F] float32 CPU tensor, got ", x.sizes(), " ", x.scalar_type(),
              " on ", x.device());
  return make_plan(fn, x.size(0), x.size(1), rows, gran);
}

// Records the smallest failing row.
void record_min(std::atomic<int64_t>& slot, int64_t r) {
  int64_t cur = slot.load(std::memory_order_relaxed);
  while (r < cur && !slot.compare_exchange_weak(cur, r, std::memory_order_relaxed)) {
  }
}

struct RowErrors {
  std::atomic<int64_t> non_finite, too_wide;
  explicit RowErrors(int64_t n) : non_finite(n), too_wide(n) {}
  void check(const char* fn, int64_t n) const {
    const int64_t a = non_finite.load(), b = too_wide.load();
    TORCH_CHECK(a == n, fn, ": x must be finite, row ", a, " holds NaN or infinity");
    TORCH_CHECK(b == n, fn, ": the value range of row ", b,
                " (hi - lo) overflows float32; cannot quantize it");
  }
};

// Folds per-row ranges (rmin / rmax, rows of 16/32-bit groups skipped) into the parameters
// of the groups for kTensor / kBucket: params[2 g] = scale, params[2 g + 1] = lo; (1, 0)
// for 16/32-bit groups.
// Group parameters from the value range of each group (lo[g], hi[g]) and of all quantized
// rows (tlo, thi); empty ranges (lo > hi) give scale 1, lo 0.
void finish_group_params(const char* fn, const Plan& p, const std::vector<float>& lo,
                         const std::vector<float>& hi, float tlo, float thi, float* params) {
  const int64_t g = static_cast<int64_t>(p.gbits.size());
  for (int64_t gi = 0; gi < g; ++gi) {
    const int b = p.gbits[gi];
    float l = p.gran == Granularity::kTensor ? tlo : lo[gi];
    float h = p.gran == Granularity::kTensor ? thi : hi[gi];
    if (l > h) l = h = 0.0f;  // no values in range
    if (b > 8) {
      params[2 * gi] = 1.0f;
      params[2 * gi + 1] = 0.0f;
      continue;
    }
    TORCH_CHECK(std::isfinite(h - l), fn, ": quantization range [", l, ", ", h, "] of group ", gi,
                " is too wide: hi - lo overflows float32");
    params[2 * gi] = affine_scale(l, h, b);
    params[2 * gi + 1] = l;
  }
}

// Group parameters folded from per-row min / max.
void fold_group_params(const char* fn, const Plan& p, const std::vector<float>& rmin,
                       const std::vector<float>& rmax, float* params) {
  const int64_t n = p.n, g = static_cast<int64_t>(p.gbits.size());
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> lo(static_cast<size_t>(g), inf), hi(static_cast<size_t>(g), -inf);
  float tlo = inf, thi = -inf;
  if (p.f > 0) {
    for (int64_t r = 0; r < n; ++r) {
      if (p.bits(r) > 8) continue;
      const int64_t gi = p.gp != nullptr ? p.gp[r] : 0;
      lo[gi] = std::min(lo[gi], rmin[r]);
      hi[gi] = std::max(hi[gi], rmax[r]);
      tlo = std::min(tlo, rmin[r]);
      thi = std::max(thi, rmax[r]);
    }
  }
  finish_group_params(fn, p, lo, hi, tlo, thi, params);
}

// Group parameters (fold_group_params) of a whole matrix x.
void group_params(const char* fn, const Kernels& k, const float* x, const Plan& p, float* params,
                  RowErrors& err) {
  const int64_t n = p.n, f = p.f;
  std::vector<float> rmin(static_cast<size_t>(n), 0.0f), rmax(static_cast<size_t>(n), 0.0f);
  if (f > 0) {
    at::parallel_for(0, n, quant_cpu::row_grain(f), [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        if (p.bits(r) > 8) continue;
        if (!k.minmax(x + r * f, f, &rmin[r], &rmax[r])) record_min(err.non_finite, r);
      }
    });
  }
  err.check(fn, n);
  fold_group_params(fn, p, rmin, rmax, params);
}

// The (scale, lo) of row r, whose f values are at xr: measured for per-row ranges (and
// stored in params when given; (1, 0) for 16/32-bit rows), else read from the group
// slots of params. False, with the row recorded in err, when the row cannot be quantized
// (non-finite values, or a range whose width overflows float32).
bool row_params(const Kernels& k, const float* xr, const Plan& p, int64_t r, float* params,
                RowErrors& err, float& scale, float& lo) {
  const int b = p.bits(r);
  scale = 1.0f;
  lo = 0.0f;
  if (p.gran == Granularity::kRow) {
    if (b <= 8 && p.f > 0) {
      float mn, mx;
      if (!k.minmax(xr, p.f, &mn, &mx)) {
        record_min(err.non_finite, r);
        return false;
      }
      if (!std::isfinite(mx - mn)) {
        record_min(err.too_wide, r);
        return false;
      }
      scale = affine_scale(mn, mx, b);
      lo = mn;
    }
    if (params != nullptr) {
      params[2 * r] = scale;
      params[2 * r + 1] = lo;
    }
  } else if (params != nullptr) {
    const int64_t pi = p.param_index(r);
    scale = params[2 * pi];
    lo = params[2 * pi + 1];
  }
  return true;
}

// Stores one row of f values at `bits` (32: as is, 16: half, else codes) into out.
void store_row(const Kernels& k, const float* xr, int64_t f, int bits, float scale, float lo,
               float nz, uint8_t* out) {
  if (bits == 32)
    std::memcpy(out, xr, 4 * static_cast<size_t>(f));
  else if (bits == 16)
    k.pack_half(xr, f, out);
  else if (f > 0)
    k.pack(xr, f, bits, scale, lo, nz, out);
}

// Runs fn(r, bits, scale, lo) for every row in parallel with the row's parameters, which it
// also stores in params ([P, 2]; per-row slots are filled here for kRow). The single place
// where parameters are computed, shared by pack() and fake_quantize().
template <class RowFn>
void for_each_row(const char* fn_name, const Kernels& k, const float* x, const Plan& p,
                  float* params, const RowFn& fn) {
  RowErrors err(p.n);
  if (p.any_quantized && p.gran != Granularity::kRow) group_params(fn_name, k, x, p, params, err);
  err.check(fn_name, p.n);
  const int64_t f = p.f;
  at::parallel_for(0, p.n, quant_cpu::row_grain(f), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      float scale, lo;
      if (!row_params(k, x + r * f, p, r, params, err, scale, lo)) continue;
      fn(r, p.bits(r), scale, lo);
    }
  });
  err.check(fn_name, p.n);
}

// The kernels' nz argument: 1 when non-zero values must keep a non-zero code (kNonzero,
// in a row whose range starts at 0, where code 0 decodes to exactly 0).
float nonzero_floor(const QuantOptions& opt, float lo) {
  return opt.rounding == Rounding::kNonzero && lo == 0.0f ? 1.0f : 0.0f;
}

void check_column_scale(const char* fn, const QuantOptions& opt, int64_t f) {
  const at::Tensor& c = opt.column_scale;
  if (!c.defined()) return;
  TORCH_CHECK(
      c.dim() == 1 && c.size(0) == f && c.scalar_type() == at::kFloat && c.device().is_cpu(), fn,
      ": column_scale must be a [F = ", f, "] float32 CPU tensor, got ", c.sizes(), " ",
      c.scalar_type());
  TORCH_CHECK(c.gt(0).all().item<bool>() && c.isfinite().all().item<bool>(), fn,
              ": column_scale must be finite and > 0");
}

at::Tensor fake_quantize_impl(const at::Tensor& x_in, const RowBits& rows, Granularity gran,
                              const QuantOptions& opt) {
  const Plan p = make_plan("fake_quantize", x_in, rows, gran);
  check_column_scale("fake_quantize", opt, p.f);
  const bool cols = opt.column_scale.defined() && p.any_quantized;
  const at::Tensor x =
      cols ? (x_in / opt.column_scale.unsqueeze(0)).contiguous() : x_in.contiguous();
  at::Tensor y = at::empty({p.n, p.f}, x.options());
  if (p.n == 0 || p.f == 0) return y;
  std::vector<float> params(static_cast<size_t>(2 * p.num_params));
  const Kernels& k = quant_cpu::kernels();
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t f = p.f;
  for_each_row("fake_quantize", k, xp, p, params.empty() ? nullptr : params.data(),
               [&](int64_t r, int b, float scale, float lo) {
                 const float* xr = xp + r * f;
                 float* yr = yp + r * f;
                 if (b == 32) {
                   std::memcpy(yr, xr, 4 * static_cast<size_t>(f));
                 } else if (b == 16) {
                   // Through half storage, as pack() + decode() would.
                   thread_local std::vector<uint8_t> buf;
                   buf.resize(static_cast<size_t>(2 * f));
                   k.pack_half(xr, f, buf.data());
                   k.decode(buf.data(), buf.data() + buf.size(), f, 16, 1.0f, 0.0f, yr);
                 } else {
                   k.fake(xr, f, b, scale, lo, nonzero_floor(opt, lo), yr);
                 }
               });
  return cols ? y.mul_(opt.column_scale.unsqueeze(0)) : y;
}

// Straight-through estimator (SGQuant Sec. III-D): the ranges come from x itself, so every
// x is inside [lo, hi] and d x^ / d x = 1.
class FakeQuantizeFunction : public torch::autograd::Function<FakeQuantizeFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* /*ctx*/, const at::Tensor& x,
                            const RowBits& rows, Granularity gran, const QuantOptions& opt) {
    return fake_quantize_impl(x, rows, gran, opt);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* /*ctx*/,
                                                 torch::autograd::variable_list grad) {
    return {grad[0], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

int64_t index_list_code_bytes(int64_t rows, int64_t cols, int64_t ones) {
  return ones * quant_cpu::index_entry_bytes(cols) + 8 * (rows + 1);
}

bool index_list_is_smaller(int64_t rows, int64_t cols, int64_t ones, int64_t bitmap_code_bytes,
                           bool several_groups) {
  if (rows == 0 || cols == 0) return false;
  const int64_t bitmap = bitmap_code_bytes + (several_groups ? 8 * (rows + 1) : 0);
  return index_list_code_bytes(rows, cols, ones) < bitmap;
}

PackedView PackedTensorAccess::view(const PackedTensor& t) {
  PackedView v;
  if (!t.codes_.defined()) return v;
  v.codes = t.codes_.data_ptr<uint8_t>();
  v.end = v.codes + t.codes_.numel();
  if (t.layout_ == PackedLayout::kIndexList) {
    v.index_list = true;
    v.idx_offset = t.index_offset_.data_ptr<int64_t>();
    if (quant_cpu::index_entry_bytes(t.cols_) == 2)
      v.idx16 = reinterpret_cast<const uint16_t*>(v.codes);
    else
      v.idx32 = reinterpret_cast<const int32_t*>(v.codes);
  }
  if (t.row_offset_.defined()) v.offset = t.row_offset_.data_ptr<int64_t>();
  if (t.row_group_.defined()) v.group = t.row_group_.data_ptr<uint8_t>();
  v.group_bits = t.group_bits_.data();
  if (t.params_.defined()) v.params = t.params_.data_ptr<float>();
  v.per_row = t.gran_ == Granularity::kRow;
  v.stride = t.row_stride_;
  v.rows = t.rows_;
  v.cols = t.cols_;
  return v;
}

const int64_t* PackedTensorAccess::allocate(PackedTensor& t, int64_t n, int64_t f,
                                            const std::vector<int>& group_bits,
                                            const at::Tensor& row_group, Granularity gran,
                                            int64_t num_params) {
  t.rows_ = n;
  t.cols_ = f;
  t.group_bits_ = group_bits;
  t.gran_ = gran;
  const int64_t* off = nullptr;
  int64_t total = 0;
  if (row_group.defined()) {
    const uint8_t* g = row_group.data_ptr<uint8_t>();
    t.row_group_ = row_group;
    t.row_offset_ = at::empty({n + 1}, at::kLong);
    int64_t* o = t.row_offset_.data_ptr<int64_t>();
    o[0] = 0;
    for (int64_t r = 0; r < n; ++r) o[r + 1] = o[r] + row_bytes(f, group_bits[g[r]]);
    total = o[n];
    off = o;
  } else {
    t.row_stride_ = row_bytes(f, group_bits[0]);
    total = n * t.row_stride_;
  }
  t.codes_ = at::empty({total}, at::kByte);
  if (num_params >= 0) t.params_ = at::empty({num_params, 2}, at::kFloat);
  return off;
}

void PackedTensorAccess::to_index_list(PackedTensor& t, const std::vector<int64_t>& ones) {
  const PackedView v = view(t);
  const int64_t n = t.rows_, f = t.cols_;
  TORCH_INTERNAL_ASSERT(static_cast<int64_t>(ones.size()) == n);
  at::Tensor offset = at::empty({n + 1}, at::kLong);
  int64_t* o = offset.data_ptr<int64_t>();
  o[0] = 0;
  for (int64_t r = 0; r < n; ++r) o[r + 1] = o[r] + ones[static_cast<size_t>(r)];
  const int64_t esize = quant_cpu::index_entry_bytes(f);
  at::Tensor idx = at::empty({o[n] * esize}, at::kByte);
  uint8_t* ip = idx.data_ptr<uint8_t>();
  const int64_t nb = row_bytes(f, 1);
  at::parallel_for(0, n, quant_cpu::row_grain(f), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      if (esize == 2)
        bitmap_to_indices(v.data(r), nb, reinterpret_cast<uint16_t*>(ip) + o[r]);
      else
        bitmap_to_indices(v.data(r), nb, reinterpret_cast<int32_t*>(ip) + o[r]);
    }
  });
  t.layout_ = PackedLayout::kIndexList;
  t.codes_ = idx;
  t.index_offset_ = offset;
  t.row_offset_ = at::Tensor();
  t.row_stride_ = 0;
}

PackedTensor PackedTensor::pack(const at::Tensor& x_in, const RowBits& rows, Granularity gran,
                                PackLayoutChoice layout, const QuantOptions& opt) {
  const Plan p = make_plan("PackedTensor::pack", x_in, rows, gran);
  check_column_scale("PackedTensor::pack", opt, p.f);
  // Column-scaled values are a transient copy of x; the result keeps only the scales.
  const bool cols = opt.column_scale.defined() && p.any_quantized;
  const at::Tensor x =
      cols ? (x_in / opt.column_scale.unsqueeze(0)).contiguous() : x_in.contiguous();
  PackedTensor t;
  if (cols) t.col_scale_ = opt.column_scale.contiguous().clone();
  const int64_t n = p.n, f = p.f;
  const int64_t* off = PackedTensorAccess::allocate(t, n, f, p.gbits, p.group, gran,
                                                    p.any_quantized ? p.num_params : -1);
  const Kernels& k = quant_cpu::kernels();
  const float* xp = x.data_ptr<float>();
  uint8_t* codes = t.codes_.data_ptr<uint8_t>();
  const int64_t stride = t.row_stride_;
  for_each_row("PackedTensor::pack", k, xp, p,
               t.params_.defined() ? t.params_.data_ptr<float>() : nullptr,
               [&](int64_t r, int b, float scale, float lo) {
                 store_row(k, xp + r * f, f, b, scale, lo, nonzero_floor(opt, lo),
                           codes + (off != nullptr ? off[r] : r * stride));
               });
  const bool all_one_bit =
      std::all_of(p.gbits.begin(), p.gbits.end(), [](int b) { return b == 1; });
  if (layout == PackLayoutChoice::kAuto && all_one_bit) {
    std::vector<int64_t> ones(static_cast<size_t>(n));
    const PackedView v = PackedTensorAccess::view(t);
    at::parallel_for(0, n, quant_cpu::row_grain(f), [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) ones[r] = count_ones(v.data(r), row_bytes(f, 1));
    });
    int64_t total_ones = 0;
    for (int64_t c : ones) total_ones += c;
    if (index_list_is_smaller(n, f, total_ones, t.codes_.numel(), off != nullptr)) {
      PackedTensorAccess::to_index_list(t, ones);
    }
  }
  return t;
}

PackedTensor PackedTensor::pack_blocks(int64_t rows_n, int64_t cols,
                                       const std::vector<int64_t>& bounds, const RowBits& rows,
                                       Granularity gran, Rounding rounding,
                                       const BlockProducer& produce) {
  const char* fn = "PackedTensor::pack_blocks";
  const Plan p = make_plan(fn, rows_n, cols, rows, gran);
  TORCH_CHECK(bounds.size() >= 2 && bounds.front() == 0 && bounds.back() == rows_n, fn,
              ": bounds must run from 0 to ", rows_n, " (got ", bounds.size(), " entries)");
  for (size_t i = 1; i < bounds.size(); ++i) {
    TORCH_CHECK(bounds[i] >= bounds[i - 1], fn, ": bounds must not decrease, got ", bounds[i - 1],
                " then ", bounds[i]);
  }
  TORCH_CHECK(static_cast<bool>(produce), fn, ": produce is empty");
  const int64_t n = p.n, f = p.f, blocks = static_cast<int64_t>(bounds.size()) - 1;
  PackedTensor t;
  const int64_t* off = PackedTensorAccess::allocate(t, n, f, p.gbits, p.group, gran,
                                                    p.any_quantized ? p.num_params : -1);
  if (n == 0 || f == 0) return t;
  const Kernels& k = quant_cpu::kernels();
  float* params = t.params_.defined() ? t.params_.data_ptr<float>() : nullptr;
  RowErrors err(n);
  // Blocks in parallel, each produced into a per-task buffer.
  auto for_blocks =
      [&](const std::function<void(int64_t b, int64_t r0, int64_t r1, const float*)>& fn_rows) {
        at::parallel_for(0, blocks, 1, [&](int64_t bb, int64_t be) {
          std::vector<float> buf;
          for (int64_t b = bb; b < be; ++b) {
            const int64_t r0 = bounds[b], r1 = bounds[b + 1];
            if (r0 == r1) continue;
            buf.resize(static_cast<size_t>((r1 - r0) * f));
            produce(b, buf.data());
            fn_rows(b, r0, r1, buf.data());
          }
        });
      };
  if (p.any_quantized && gran != Granularity::kRow) {
    // Pass 1: the group ranges, as group_params() folds them, kept per block and group
    // (not per row: rows are edges for attention, E' of them).
    const int64_t g = static_cast<int64_t>(p.gbits.size());
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> blo(static_cast<size_t>(blocks * g), inf);
    std::vector<float> bhi(static_cast<size_t>(blocks * g), -inf);
    for_blocks([&](int64_t b, int64_t r0, int64_t r1, const float* x) {
      for (int64_t r = r0; r < r1; ++r) {
        if (p.bits(r) > 8) continue;
        float mn = 0.0f, mx = 0.0f;
        if (!k.minmax(x + (r - r0) * f, f, &mn, &mx)) record_min(err.non_finite, r);
        const int64_t gi = b * g + (p.gp != nullptr ? p.gp[r] : 0);
        blo[gi] = std::min(blo[gi], mn);
        bhi[gi] = std::max(bhi[gi], mx);
      }
    });
    err.check(fn, n);
    std::vector<float> lo(static_cast<size_t>(g), inf), hi(static_cast<size_t>(g), -inf);
    float tlo = inf, thi = -inf;
    for (int64_t b = 0; b < blocks; ++b) {
      for (int64_t gi = 0; gi < g; ++gi) {
        lo[gi] = std::min(lo[gi], blo[b * g + gi]);
        hi[gi] = std::max(hi[gi], bhi[b * g + gi]);
        tlo = std::min(tlo, blo[b * g + gi]);
        thi = std::max(thi, bhi[b * g + gi]);
      }
    }
    finish_group_params(fn, p, lo, hi, tlo, thi, params);
  }
  // Pass 2 (the only one with per-row ranges): codes.
  uint8_t* codes = t.codes_.data_ptr<uint8_t>();
  const int64_t stride = t.row_stride_;
  QuantOptions opt;
  opt.rounding = rounding;
  for_blocks([&](int64_t, int64_t r0, int64_t r1, const float* x) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + (r - r0) * f;
      float scale, lo;
      if (!row_params(k, xr, p, r, params, err, scale, lo)) continue;
      store_row(k, xr, f, p.bits(r), scale, lo, nonzero_floor(opt, lo),
                codes + (off != nullptr ? off[r] : r * stride));
    }
  });
  err.check(fn, n);
  return t;
}

PackedTensor PackedTensor::concat_rows(std::vector<PackedTensor> parts, PackLayoutChoice layout) {
  TORCH_CHECK(!parts.empty(), "PackedTensor::concat_rows: no parts");
  const PackedTensor& first = parts[0];
  int64_t rows = 0, code_bytes = 0, param_rows = 0, ones = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const PackedTensor& p = parts[i];
    TORCH_CHECK(p.defined(), "PackedTensor::concat_rows: part ", i, " is undefined");
    TORCH_CHECK(!p.col_scale_.defined(), "PackedTensor::concat_rows: part ", i,
                " has column scales (their rows cannot be stacked)");
    TORCH_CHECK(p.group_bits_.size() == 1 && !p.row_group_.defined(),
                "PackedTensor::concat_rows: part ", i, " has ", p.group_bits_.size(),
                " row groups (only uniform bits are supported)");
    TORCH_CHECK(p.group_bits_[0] == first.group_bits_[0] && p.cols_ == first.cols_ &&
                    p.gran_ == first.gran_,
                "PackedTensor::concat_rows: part ", i, " is [", p.rows_, ", ", p.cols_, "] at ",
                p.group_bits_[0], " bits; part 0 is [", first.rows_, ", ", first.cols_, "] at ",
                first.group_bits_[0], " bits (bits, columns and granularity must match)");
    TORCH_CHECK(!p.params_.defined() || p.gran_ == Granularity::kRow,
                "PackedTensor::concat_rows: part ", i,
                " has per-tensor ranges (only Granularity::kRow parts can be stacked)");
    rows += p.rows_;
    if (p.layout_ == PackedLayout::kIndexList) {
      ones += p.num_index_entries();
    } else {
      code_bytes += p.codes_.numel();
      if (first.group_bits_[0] == 1)
        ones += count_ones(p.codes_.data_ptr<uint8_t>(), p.codes_.numel());
    }
    if (p.params_.defined()) param_rows += p.params_.size(0);
  }
  const int64_t f = first.cols_;
  const int bits = first.group_bits_[0];
  PackedTensor t;
  t.rows_ = rows;
  t.cols_ = f;
  t.group_bits_ = first.group_bits_;
  t.gran_ = first.gran_;
  t.row_stride_ = row_bytes(f, bits);
  code_bytes = rows * t.row_stride_;  // the bitmap's (index parts counted here too)
  // The layout pack() would choose for the stacked matrix.
  const bool index_list =
      layout == PackLayoutChoice::kAuto && bits == 1 &&
      index_list_is_smaller(rows, f, ones, code_bytes, /*several_groups=*/false);
  const int64_t esize = quant_cpu::index_entry_bytes(f);
  int64_t* ioff = nullptr;
  if (index_list) {
    t.layout_ = PackedLayout::kIndexList;
    t.row_stride_ = 0;
    t.codes_ = at::empty({ones * esize}, at::kByte);
    t.index_offset_ = at::empty({rows + 1}, at::kLong);
    ioff = t.index_offset_.data_ptr<int64_t>();
    ioff[0] = 0;
  } else {
    t.codes_ = at::empty({code_bytes}, at::kByte);
  }
  const bool has_params = first.params_.defined();
  if (has_params) t.params_ = at::empty({param_rows, 2}, at::kFloat);
  uint8_t* codes = t.codes_.data_ptr<uint8_t>();
  float* params = has_params ? t.params_.data_ptr<float>() : nullptr;
  int64_t row = 0;
  std::vector<uint8_t> bitmap_row;
  for (PackedTensor& p : parts) {
    const PackedView v = PackedTensorAccess::view(p);
    if (index_list) {
      // Entries of row r go to [ioff[row + r], ioff[row + r + 1]).
      for (int64_t r = 0; r < p.rows_; ++r) {
        const int64_t at_entry = ioff[row + r];
        int64_t count = 0;
        if (v.index_list) {
          count = v.idx_offset[r + 1] - v.idx_offset[r];
          std::memcpy(codes + at_entry * esize,
                      p.codes_.data_ptr<uint8_t>() + v.idx_offset[r] * esize,
                      static_cast<size_t>(count * esize));
        } else if (esize == 2) {
          count = bitmap_to_indices(v.data(r), row_bytes(f, 1),
                                    reinterpret_cast<uint16_t*>(codes) + at_entry);
        } else {
          count = bitmap_to_indices(v.data(r), row_bytes(f, 1),
                                    reinterpret_cast<int32_t*>(codes) + at_entry);
        }
        ioff[row + r + 1] = at_entry + count;
      }
    } else if (v.index_list) {
      const int64_t nb = p.rows_ * t.row_stride_;
      std::memset(codes, 0, static_cast<size_t>(nb));
      for (int64_t r = 0; r < p.rows_; ++r) row_to_bitmap(v, r, codes + r * t.row_stride_);
      codes += nb;
    } else {
      const int64_t nb = p.codes_.numel();
      if (nb > 0) std::memcpy(codes, p.codes_.data_ptr<uint8_t>(), static_cast<size_t>(nb));
      codes += nb;
    }
    row += p.rows_;
    if (has_params) {
      const int64_t np = p.params_.numel();
      if (np > 0) {
        std::memcpy(params, p.params_.contiguous().data_ptr<float>(), 4 * static_cast<size_t>(np));
      }
      params += np;
    }
    p = PackedTensor();
  }
  return t;
}

int64_t PackedTensor::code_bytes() const {
  if (!codes_.defined()) return 0;
  return codes_.numel() + (index_offset_.defined() ? 8 * index_offset_.numel() : 0);
}

int64_t PackedTensor::num_index_entries() const {
  if (layout_ != PackedLayout::kIndexList) return -1;
  return codes_.numel() / quant_cpu::index_entry_bytes(cols_);
}

int64_t PackedTensor::nbytes() const {
  int64_t bytes = code_bytes();
  if (row_offset_.defined()) bytes += row_offset_.numel() * 8;
  if (row_group_.defined()) {
    bytes += row_group_.numel();
    bytes += static_cast<int64_t>(group_bits_.size());  // one byte per group's bits
  }
  if (params_.defined()) bytes += params_.numel() * 4;
  if (col_scale_.defined()) bytes += col_scale_.numel() * 4;
  return bytes;
}

double PackedTensor::average_bits() const {
  const int64_t values = rows_ * cols_;
  return values == 0 ? 0.0 : 8.0 * static_cast<double>(code_bytes()) / static_cast<double>(values);
}

void PackedTensorAccess::decode_row(const PackedTensor& t, const PackedView& v, int64_t r,
                                    float* out) {
  const int64_t f = v.cols;
  if (v.index_list) {
    const float one = v.code1(r);
    std::fill(out, out + f, v.code0(r));
    const int64_t eb = v.idx_offset[r], ee = v.idx_offset[r + 1];
    if (v.idx16 != nullptr) {
      for (int64_t e = eb; e < ee; ++e) out[v.idx16[e]] = one;
    } else {
      for (int64_t e = eb; e < ee; ++e) out[v.idx32[e]] = one;
    }
  } else {
    quant_cpu::kernels().decode(v.data(r), v.end, f, v.bits(r), v.scale(r), v.lo(r), out);
  }
  t.scale_columns(out, f);
}

void PackedTensor::decode_rows(int64_t begin, int64_t end, float* out) const {
  TORCH_CHECK(defined(), "PackedTensor::decode_rows: the tensor is undefined");
  TORCH_CHECK(0 <= begin && begin <= end && end <= rows_, "PackedTensor::decode_rows: rows [",
              begin, ", ", end, ") are not within [0, ", rows_, ")");
  if (begin == end || cols_ == 0) return;
  TORCH_CHECK(out != nullptr, "PackedTensor::decode_rows: out is null");
  const PackedView v = PackedTensorAccess::view(*this);
  if (cols_ == 1 && !v.index_list && v.group == nullptr && v.group_bits[0] <= 8 &&
      !col_scale_.defined()) {
    // One code per row (an edge's attention value): read it in place instead of a kernel
    // call per value. The same arithmetic as the kernels' decode: q * scale, then + lo.
    const int b = v.group_bits[0];
    const unsigned mask = (1u << b) - 1u;
    for (int64_t r = begin; r < end; ++r) {
      const float q = static_cast<float>(*v.data(r) & mask);
      float m = q * v.scale(r);
      asm("" : "+x"(m));  // never fused into an FMA (the kernels multiply, then add)
      out[r - begin] = m + v.lo(r);
    }
    return;
  }
  at::parallel_for(begin, end, quant_cpu::row_grain(cols_), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      PackedTensorAccess::decode_row(*this, v, r, out + (r - begin) * cols_);
    }
  });
}

void PackedTensor::scale_columns(float* row, int64_t f) const {
  if (!col_scale_.defined()) return;
  const float* c = col_scale_.data_ptr<float>();
  for (int64_t j = 0; j < f; ++j) row[j] *= c[j];
}

at::Tensor PackedTensor::decode() const {
  TORCH_CHECK(defined(), "PackedTensor::decode: the tensor is undefined");
  at::Tensor y = at::empty({rows_, cols_}, at::kFloat);
  decode_rows(0, rows_, y.data_ptr<float>());
  return y;
}

at::Tensor PackedTensor::codes_as_int() const {
  TORCH_CHECK(defined(), "PackedTensor::codes_as_int: the tensor is undefined");
  at::Tensor c = at::empty({rows_, cols_}, at::kInt);
  int32_t* cp = c.data_ptr<int32_t>();
  const PackedView v = PackedTensorAccess::view(*this);
  if (v.index_list) {
    c.zero_();
    for (int64_t r = 0; r < rows_; ++r) {
      const RowIndices idx = row_indices(r);
      for (int64_t i = 0; i < idx.size; ++i) cp[r * cols_ + idx[i]] = 1;
    }
    return c;
  }
  for (int64_t r = 0; r < rows_; ++r) {
    const int b = v.bits(r);
    const uint8_t* p = v.data(r);
    int32_t* out = cp + r * cols_;
    for (int64_t k = 0; k < cols_; ++k) {
      if (b == 32) {
        std::memcpy(out + k, p + 4 * k, 4);
      } else if (b == 16) {
        out[k] = p[2 * k] | (p[2 * k + 1] << 8);
      } else {
        uint32_t code = 0;
        for (int i = 0; i < b; ++i) {
          const int64_t bit = k * b + i;
          code |= static_cast<uint32_t>((p[bit >> 3] >> (bit & 7)) & 1) << i;
        }
        out[k] = static_cast<int32_t>(code);
      }
    }
  }
  return c;
}

int PackedTensor::row_bits(int64_t r) const {
  TORCH_CHECK(r >= 0 && r < rows_, "PackedTensor::row_bits: row ", r, " not in [0, ", rows_, ")");
  return PackedTensorAccess::view(*this).bits(r);
}

const uint8_t* PackedTensor::row_data(int64_t r) const {
  TORCH_CHECK(r >= 0 && r < rows_, "PackedTensor::row_data: row ", r, " not in [0, ", rows_, ")");
  TORCH_CHECK(layout_ == PackedLayout::kBitmap,
              "PackedTensor::row_data: the tensor is stored as an index list (layout "
              "kIndexList), it has no row bytes; use row_indices(",
              r, ")");
  return PackedTensorAccess::view(*this).data(r);
}

PackedTensor::RowIndices PackedTensor::row_indices(int64_t r) const {
  TORCH_CHECK(r >= 0 && r < rows_, "PackedTensor::row_indices: row ", r, " not in [0, ", rows_,
              ")");
  TORCH_CHECK(layout_ == PackedLayout::kIndexList,
              "PackedTensor::row_indices: the tensor is stored as a bitmap (layout kBitmap); use "
              "row_data(",
              r, ")");
  const PackedView v = PackedTensorAccess::view(*this);
  RowIndices out;
  const int64_t b = v.idx_offset[r];
  out.size = v.idx_offset[r + 1] - b;
  if (v.idx16 != nullptr)
    out.u16 = v.idx16 + b;
  else
    out.i32 = v.idx32 + b;
  return out;
}

float PackedTensor::row_scale(int64_t r) const {
  TORCH_CHECK(r >= 0 && r < rows_, "PackedTensor::row_scale: row ", r, " not in [0, ", rows_, ")");
  return PackedTensorAccess::view(*this).scale(r);
}

float PackedTensor::row_lo(int64_t r) const {
  TORCH_CHECK(r >= 0 && r < rows_, "PackedTensor::row_lo: row ", r, " not in [0, ", rows_, ")");
  return PackedTensorAccess::view(*this).lo(r);
}

at::Tensor fake_quantize(const at::Tensor& x, const RowBits& rows, Granularity gran,
                         const QuantOptions& opt) {
  return FakeQuantizeFunction::apply(x, rows, gran, opt);
}

at::Tensor column_scales(const at::Tensor& x) {
  TORCH_CHECK(x.defined() && x.dim() == 2 && x.scalar_type() == at::kFloat,
              "column_scales: x must be a [N, F] float32 tensor");
  at::NoGradGuard no_grad;
  const at::Tensor count = x.ne(0).sum(0).to(at::kFloat);
  const at::Tensor mean = x.abs().sum(0) / count.clamp_min(1);
  return at::where(mean > 0, mean, at::ones_like(mean)).contiguous();
}

std::string to_string(Rounding r) { return r == Rounding::kNonzero ? "nonzero" : "nearest"; }

}  // namespace qgnn
