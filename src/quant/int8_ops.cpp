// Front-ends of the integer kernels (qgnn/quant/int8_ops.h): argument checks, fixed-point
// multipliers, weight packing and the split of rows over threads. The kernels themselves
// are in quant/cpu/int8_kernel.cpp.
#include "qgnn/quant/int8_ops.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "ops/cpu/kernels.h"
#include "quant/cpu/int8_kernel.h"

namespace qgnn {
namespace {

using quant_cpu::Int8Kernels;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxInFeatures = kInt32Max / (128 * 128);  // 131071
constexpr int64_t kMaxInDegree = int64_t{1} << 24;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void check_multiplier(int64_t m, int64_t shift, const char* fn, const char* what, int64_t index) {
  TORCH_CHECK(m >= 0 && m <= kInt32Max, fn, ": ", what, "[", index,
              "]: m must be in [0, 2^31), got ", m);
  TORCH_CHECK(shift >= -31 && shift <= 30, fn, ": ", what, "[", index,
              "]: shift must be in [-31, 30], got ", shift);
}

void check_range(const QuantRange& r, const char* fn) {
  TORCH_CHECK(r.qmin >= -128 && r.qmin <= r.qmax && r.qmax <= 127, fn,
              ": the output range must satisfy -128 <= qmin <= qmax <= 127, got [", r.qmin, ", ",
              r.qmax, "]");
  TORCH_CHECK(r.zero_point >= r.qmin && r.zero_point <= r.qmax, fn, ": zero_point = ", r.zero_point,
              " is outside [qmin, qmax] = [", r.qmin, ", ", r.qmax, "]");
}

// A multiplier tensor ([n, 2] or [1, 2] int32 rows (m, shift)) as (m, s = 31 - shift) arrays
// of length `padded` >= n; entries past n are the zero multiplier (0, 62).
struct Multipliers {
  std::vector<int32_t> m, s;
  int max_shift = -31;
};

Multipliers read_multipliers(const at::Tensor& t, int64_t n, int64_t padded, const char* fn,
                             const char* what) {
  TORCH_CHECK(t.defined(), fn, ": ", what, " is required");
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kInt && t.dim() == 2 &&
                  t.size(1) == 2 && (t.size(0) == n || t.size(0) == 1),
              fn, ": ", what, " must be a CPU int32 [", n,
              ", 2] or [1, 2] tensor of (m, shift) rows, got ", t.scalar_type(), " ", t.sizes());
  const at::Tensor c = t.contiguous();
  const int32_t* p = c.data_ptr<int32_t>();
  Multipliers r;
  r.m.assign(static_cast<size_t>(padded), 0);
  r.s.assign(static_cast<size_t>(padded), 62);
  const int64_t rows = c.size(0);
  for (int64_t i = 0; i < rows; ++i) {
    check_multiplier(p[2 * i], p[2 * i + 1], fn, what, i);
    r.max_shift = std::max(r.max_shift, static_cast<int>(p[2 * i + 1]));
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = rows == 1 ? 0 : i;
    r.m[static_cast<size_t>(i)] = p[2 * k];
    r.s[static_cast<size_t>(i)] = 31 - p[2 * k + 1];
  }
  return r;
}

void check_matrix(const at::Tensor& t, at::ScalarType dtype, int64_t cols, const char* fn,
                  const char* what) {
  TORCH_CHECK(t.defined(), fn, ": ", what, " is undefined");
  TORCH_CHECK(t.device().is_cpu() && t.dim() == 2 && t.scalar_type() == dtype, fn, ": ", what,
              " must be a 2-D CPU ", dtype, " tensor, got ", t.scalar_type(), " ", t.sizes(),
              " on ", t.device());
  TORCH_CHECK(t.size(1) == cols, fn, ": ", what, " must have ", cols, " columns, got ", t.size(1));
}

int32_t lower_bound(const QuantRange& r) {
  return r.relu ? std::max(r.qmin, r.zero_point) : r.qmin;
}

at::Tensor run_linear(const char* fn, const at::Tensor& x_in, bool x4, const Int8Linear& w,
                      const LinearRequant* rq) {
  TORCH_CHECK(w.defined(), fn, ": weights are undefined (build them with pack_int8_linear)");
  const int64_t k = w.in_features, o = w.out_features, o16 = ceil_div(o, 16) * 16;
  if (x4) {
    check_matrix(x_in, at::kByte, ceil_div(k, 2), fn, "x_packed");
  } else {
    check_matrix(x_in, at::kChar, k, fn, "x_q");
  }
  const at::Tensor x = x_in.contiguous();
  const int64_t n = x.size(0);
  quant_cpu::LinearArgs a;
  a.x = static_cast<const uint8_t*>(x.data_ptr());
  a.ldx = x.size(1);
  a.x4 = x4;
  a.k = k;
  a.o = o;
  a.o16 = o16;
  a.w = w.weight.data_ptr<int8_t>();
  a.w4 = w.packed4.data_ptr<int8_t>();
  a.w2 = w.packed2.data_ptr<int16_t>();
  a.comp = w.comp.data_ptr<int32_t>();

  at::Tensor out;
  Multipliers col, row;
  at::Tensor bias;
  if (rq == nullptr) {
    out = at::empty({n, o}, at::kInt);
    a.out_s32 = out.data_ptr<int32_t>();
  } else {
    check_range(rq->out, fn);
    col = read_multipliers(rq->col_multiplier, o, o16, fn, "col_multiplier");
    a.rq.col_m = col.m.data();
    a.rq.col_s = col.s.data();
    if (rq->row_multiplier.defined()) {
      row = read_multipliers(rq->row_multiplier, n, n, fn, "row_multiplier");
      TORCH_CHECK(row.max_shift + col.max_shift <= 30, fn,
                  ": row and column multipliers combine beyond 2^30 (max shifts ", row.max_shift,
                  " + ", col.max_shift, " > 30)");
      a.rq.row_m = row.m.data();
      a.rq.row_s = row.s.data();
    }
    int64_t max_bias = 0;
    if (rq->bias.defined()) {
      const at::Tensor& b = rq->bias;
      TORCH_CHECK(
          b.device().is_cpu() && b.scalar_type() == at::kInt && b.dim() == 1 && b.size(0) == o, fn,
          ": bias must be a CPU int32 [", o, "] tensor, got ", b.scalar_type(), " ", b.sizes());
      bias = at::zeros({o16}, at::kInt);
      bias.narrow(0, 0, o).copy_(b);
      const int32_t* bp = bias.data_ptr<int32_t>();
      for (int64_t c = 0; c < o; ++c) max_bias = std::max(max_bias, std::abs(int64_t{bp[c]}));
      a.rq.bias = bp;
    }
    TORCH_CHECK(k * 128 * 128 + max_bias <= kInt32Max, fn,
                ": K * 128^2 + max|bias| = ", k * 128 * 128 + max_bias,
                " may overflow the int32 accumulator (K = ", k, ")");
    a.rq.zero_point = rq->out.zero_point;
    a.rq.lo = lower_bound(rq->out);
    a.rq.hi = rq->out.qmax;
    out = at::empty({n, o}, at::kChar);
    a.out_q = out.data_ptr<int8_t>();
  }
  if (n == 0) return out;
  const Int8Kernels& kern = quant_cpu::int8_kernels();
  const int64_t grain = std::max<int64_t>(8, (int64_t{1} << 20) / std::max<int64_t>(1, k * o));
  at::parallel_for(0, n, grain, [&](int64_t b, int64_t e) { kern.linear_rows(a, b, e); });
  return out;
}

int64_t max_in_degree(const CsrGraph& g) {
  const int64_t* ip = g.indptr().data_ptr<int64_t>();
  return at::parallel_reduce(
      0, g.num_rows(), int64_t{1} << 16, int64_t{0},
      [&](int64_t b, int64_t e, int64_t m) {
        for (int64_t i = b; i < e; ++i) m = std::max(m, ip[i + 1] - ip[i]);
        return m;
      },
      [](int64_t a, int64_t b) { return std::max(a, b); });
}

at::Tensor run_spmm(const char* fn, const CsrGraph& g, const at::Tensor& x_in, bool x4, int64_t f,
                    const SpmmRequant* rq) {
  TORCH_CHECK(g.defined(), fn, ": graph is undefined");
  TORCH_CHECK(f >= 0, fn, ": num_features must be >= 0, got ", f);
  if (x4) {
    check_matrix(x_in, at::kByte, ceil_div(f, 2), fn, "x_packed");
  } else {
    check_matrix(x_in, at::kChar, f, fn, "x_q");
  }
  TORCH_CHECK(x_in.size(0) == g.num_cols(), fn, ": x has ", x_in.size(0),
              " rows but the graph has ", g.num_cols(), " columns");
  const int64_t r = g.num_rows();
  const int32_t self_weight = rq != nullptr ? rq->self_weight : 0;
  // |sum| <= 128 * (in-degree + |self_weight|) must fit int32 (checked without a pass over
  // indptr when the edge count alone bounds it).
  const int64_t budget =
      rq == nullptr ? kMaxInDegree : kInt32Max / 128 - std::abs(int64_t{self_weight});
  if (g.num_edges() > budget) {
    const int64_t d = max_in_degree(g);
    TORCH_CHECK(d <= budget, fn, ": max in-degree ", d, rq == nullptr ? "" : " + |self_weight|",
                " exceeds ", budget, " (128 * degree must fit int32)");
  }
  const at::Tensor x = x_in.contiguous();
  quant_cpu::SpmmArgs a;
  a.indptr = g.indptr().data_ptr<int64_t>();
  a.indices = g.indices().data_ptr<int64_t>();
  a.num_cols = g.num_cols();
  a.x = static_cast<const uint8_t*>(x.data_ptr());
  a.ldx = x.size(1);
  a.x4 = x4;
  a.f = f;
  at::Tensor out;
  Multipliers row;
  if (rq == nullptr) {
    out = at::empty({r, f}, at::kInt);
    a.out_s32 = out.data_ptr<int32_t>();
  } else {
    check_range(rq->out, fn);
    TORCH_CHECK(self_weight == 0 || g.is_square(), fn, ": self_weight = ", self_weight,
                " needs a square graph, got [", r, ", ", g.num_cols(), "]");
    row = read_multipliers(rq->row_multiplier, r, r, fn, "row_multiplier");
    a.rq.row_m = row.m.data();
    a.rq.row_s = row.s.data();
    a.rq.zero_point = rq->out.zero_point;
    a.rq.lo = lower_bound(rq->out);
    a.rq.hi = rq->out.qmax;
    a.self_weight = self_weight;
    out = at::empty({r, f}, at::kChar);
    a.out_q = out.data_ptr<int8_t>();
  }
  if (r == 0 || f == 0) return out;
  const Int8Kernels& kern = quant_cpu::int8_kernels();
  // Cost units ~ 64-byte vectors: an edge loads its row (plus index and prefetch), a row
  // flushes and stores its outputs.
  const int64_t vecs = ceil_div(a.ldx, 64) + 1;
  cpu::parallel_rows(a.indptr, r, vecs + 1, 2 * vecs + 4,
                     [&](int64_t b, int64_t e) { kern.spmm_rows(a, b, e); });
  return out;
}

}  // namespace

FixedPointMultiplier FixedPointMultiplier::from_real(double M) {
  TORCH_CHECK(
      std::isfinite(M) && M > 0.0 && M < 32768.0,
      "FixedPointMultiplier::from_real: the multiplier must be finite and in (0, 2^15), got ", M);
  int e = 0;
  const double f = std::frexp(M, &e);  // M = f 2^e, f in [0.5, 1)
  int64_t q = std::llround(std::ldexp(f, 31));
  if (q == (int64_t{1} << 31)) {
    q = int64_t{1} << 30;
    ++e;
  }
  if (e < -31) return {0, -31};  // M < 2^-32: zero for every int32 accumulator
  return {static_cast<int32_t>(q), e};
}

FixedPointMultiplier FixedPointMultiplier::combine(FixedPointMultiplier a, FixedPointMultiplier b) {
  check_multiplier(a.m, a.shift, "FixedPointMultiplier::combine", "a", 0);
  check_multiplier(b.m, b.shift, "FixedPointMultiplier::combine", "b", 0);
  TORCH_CHECK(a.shift + b.shift <= 30, "FixedPointMultiplier::combine: the product must be < 2^30 ",
              "(a.shift + b.shift <= 30), got shifts ", a.shift, " + ", b.shift);
  int32_t m = 0;
  int s = 0;
  quant_cpu::combine_ref(a.m, 31 - a.shift, b.m, 31 - b.shift, &m, &s);
  return {m, 31 - s};
}

double FixedPointMultiplier::to_real() const {
  return std::ldexp(static_cast<double>(m), shift - 31);
}

int32_t requantize(int32_t acc, FixedPointMultiplier mult, const QuantRange& out) {
  check_multiplier(mult.m, mult.shift, "requantize", "mult", 0);
  check_range(out, "requantize");
  return quant_cpu::requant_ref(acc, mult.m, 31 - mult.shift, out.zero_point, lower_bound(out),
                                out.qmax);
}

at::Tensor fixed_point_multipliers(const at::Tensor& real) {
  TORCH_CHECK(real.defined() && real.device().is_cpu() && real.dim() == 1 &&
                  (real.scalar_type() == at::kFloat || real.scalar_type() == at::kDouble),
              "fixed_point_multipliers: real must be a 1-D CPU float32/float64 tensor, got ",
              real.defined() ? real.sizes() : at::IntArrayRef{});
  const at::Tensor r = real.to(at::kDouble).contiguous();
  const double* p = r.data_ptr<double>();
  at::Tensor out = at::empty({r.size(0), 2}, at::kInt);
  int32_t* o = out.data_ptr<int32_t>();
  for (int64_t i = 0; i < r.size(0); ++i) {
    TORCH_CHECK(std::isfinite(p[i]) && p[i] > 0.0 && p[i] < 32768.0,
                "fixed_point_multipliers: real[", i, "] must be finite and in (0, 2^15), got ",
                p[i]);
    const FixedPointMultiplier m = FixedPointMultiplier::from_real(p[i]);
    o[2 * i] = m.m;
    o[2 * i + 1] = m.shift;
  }
  return out;
}

Int8Linear pack_int8_linear(const at::Tensor& w_q) {
  TORCH_CHECK(
      w_q.defined() && w_q.device().is_cpu() && w_q.dim() == 2 && w_q.scalar_type() == at::kChar,
      "pack_int8_linear: w_q must be a 2-D CPU int8 [out, in] tensor, got ",
      w_q.defined() ? w_q.scalar_type() : at::ScalarType::Undefined, " ",
      w_q.defined() ? w_q.sizes() : at::IntArrayRef{});
  const int64_t o = w_q.size(0), k = w_q.size(1);
  TORCH_CHECK(o >= 1, "pack_int8_linear: out_features must be >= 1, got ", o);
  TORCH_CHECK(k >= 1 && k <= kMaxInFeatures, "pack_int8_linear: in_features must be in [1, ",
              kMaxInFeatures, "] (K * 128^2 < 2^31), got ", k);
  Int8Linear w;
  w.in_features = k;
  w.out_features = o;
  w.weight = w_q.contiguous().clone();
  const int64_t o16 = ceil_div(o, 16) * 16;
  w.packed4 = at::zeros({ceil_div(k, 4), o16, 4}, at::kChar);
  w.packed2 = at::zeros({ceil_div(k, 2), o16, 2}, at::kShort);
  w.comp = at::zeros({o16}, at::kInt);
  const int8_t* src = w.weight.data_ptr<int8_t>();
  int8_t* p4 = w.packed4.data_ptr<int8_t>();
  int16_t* p2 = w.packed2.data_ptr<int16_t>();
  int32_t* comp = w.comp.data_ptr<int32_t>();
  for (int64_t c = 0; c < o; ++c) {
    int64_t sum = 0;
    for (int64_t t = 0; t < k; ++t) {
      const int8_t v = src[c * k + t];
      p4[((t / 4) * o16 + c) * 4 + t % 4] = v;
      p2[((t / 2) * o16 + c) * 2 + t % 2] = v;
      sum += v;
    }
    comp[c] = static_cast<int32_t>(-128 * sum);
  }
  return w;
}

at::Tensor int8_linear_s32(const at::Tensor& x_q, const Int8Linear& w) {
  return run_linear("int8_linear_s32", x_q, false, w, nullptr);
}

at::Tensor int8_linear(const at::Tensor& x_q, const Int8Linear& w, const LinearRequant& rq) {
  return run_linear("int8_linear", x_q, false, w, &rq);
}

at::Tensor int4_linear_s32(const at::Tensor& x_packed, const Int8Linear& w) {
  return run_linear("int4_linear_s32", x_packed, true, w, nullptr);
}

at::Tensor int4_linear(const at::Tensor& x_packed, const Int8Linear& w, const LinearRequant& rq) {
  return run_linear("int4_linear", x_packed, true, w, &rq);
}

at::Tensor int8_spmm_s32(const CsrGraph& g, const at::Tensor& x_q) {
  return run_spmm("int8_spmm_s32", g, x_q, false, x_q.defined() && x_q.dim() == 2 ? x_q.size(1) : 0,
                  nullptr);
}

at::Tensor int8_spmm(const CsrGraph& g, const at::Tensor& x_q, const SpmmRequant& rq) {
  return run_spmm("int8_spmm", g, x_q, false, x_q.defined() && x_q.dim() == 2 ? x_q.size(1) : 0,
                  &rq);
}

at::Tensor int4_spmm_s32(const CsrGraph& g, const at::Tensor& x_packed, int64_t num_features) {
  return run_spmm("int4_spmm_s32", g, x_packed, true, num_features, nullptr);
}

at::Tensor int4_spmm(const CsrGraph& g, const at::Tensor& x_packed, int64_t num_features,
                     const SpmmRequant& rq) {
  return run_spmm("int4_spmm", g, x_packed, true, num_features, &rq);
}

at::Tensor requantize_rows(const at::Tensor& acc_in, const RowRequant& rq) {
  const char* fn = "requantize_rows";
  TORCH_CHECK(acc_in.defined(), fn, ": acc is undefined");
  TORCH_CHECK(acc_in.device().is_cpu() && acc_in.dim() == 2 &&
                  (acc_in.scalar_type() == at::kInt || acc_in.scalar_type() == at::kChar),
              fn, ": acc must be a 2-D CPU int32 or int8 tensor, got ", acc_in.scalar_type(), " ",
              acc_in.sizes(), " on ", acc_in.device());
  const at::Tensor acc = acc_in.contiguous();
  const int64_t n = acc.size(0), f = acc.size(1);
  const bool acc8 = acc.scalar_type() == at::kChar;
  check_range(rq.out, fn);
  TORCH_CHECK(rq.pre_shift >= 0 && rq.pre_shift <= 31, fn, ": pre_shift must be in [0, 31], got ",
              rq.pre_shift);
  // A [1, 2] multiplier is read once (not expanded to N rows); any other shape is checked
  // against N.
  const bool per_tensor =
      rq.row_multiplier.defined() && rq.row_multiplier.dim() == 2 && rq.row_multiplier.size(0) == 1;
  const Multipliers row = per_tensor
                              ? read_multipliers(rq.row_multiplier, 1, 1, fn, "row_multiplier")
                              : read_multipliers(rq.row_multiplier, n, n, fn, "row_multiplier");
  at::Tensor self;
  if (rq.self_weight != 0) {
    TORCH_CHECK(rq.self.defined(), fn, ": self_weight = ", rq.self_weight, " needs a self tensor");
    check_matrix(rq.self, at::kChar, f, fn, "self");
    TORCH_CHECK(rq.self.size(0) == n, fn, ": self has ", rq.self.size(0), " rows, acc has ", n);
    self = rq.self.contiguous();
  }
  at::Tensor bias;
  int64_t max_bias = 0;
  if (rq.bias.defined()) {
    const at::Tensor& b = rq.bias;
    TORCH_CHECK(
        b.device().is_cpu() && b.scalar_type() == at::kInt && b.dim() == 1 && b.size(0) == f, fn,
        ": bias must be a CPU int32 [", f, "] tensor, got ", b.scalar_type(), " ", b.sizes());
    bias = at::zeros({ceil_div(f, 16) * 16}, at::kInt);
    bias.narrow(0, 0, f).copy_(b);
    const int32_t* bp = bias.data_ptr<int32_t>();
    for (int64_t c = 0; c < f; ++c) max_bias = std::max(max_bias, std::abs(int64_t{bp[c]}));
  }
  const int64_t self_bound = 128 * std::abs(int64_t{rq.self_weight});
  TORCH_CHECK(self_bound + max_bias <= kInt32Max, fn,
              ": 128 |self_weight| + max|bias| = ", self_bound + max_bias,
              " must be < 2^31 (self_weight = ", rq.self_weight, ")");
  if (acc8 && !row.m.empty()) {
    const int64_t max_m = *std::max_element(row.m.begin(), row.m.end());
    const int64_t max_v = (int64_t{128} << rq.pre_shift) + self_bound + max_bias;
    TORCH_CHECK(max_m == 0 || max_v <= ((int64_t{1} << 62) - 1) / max_m, fn,
                ": |v * m| may reach 2^62 (|v| <= ", max_v, " with pre_shift = ", rq.pre_shift,
                ", max m = ", max_m, ")");
  }
  at::Tensor out = at::empty({n, f}, at::kChar);
  if (n == 0 || f == 0) return out;
  quant_cpu::RowRequantArgs a;
  a.acc = acc.data_ptr();
  a.acc8 = acc8;
  a.f = f;
  a.pre_shift = rq.pre_shift;
  a.self = self.defined() ? self.data_ptr<int8_t>() : nullptr;
  a.self_weight = rq.self_weight;
  a.per_row = !per_tensor;
  a.out = out.data_ptr<int8_t>();
  a.rq.bias = bias.defined() ? bias.data_ptr<int32_t>() : nullptr;
  a.rq.row_m = row.m.data();
  a.rq.row_s = row.s.data();
  a.rq.zero_point = rq.out.zero_point;
  a.rq.lo = lower_bound(rq.out);
  a.rq.hi = rq.out.qmax;
  const Int8Kernels& kern = quant_cpu::int8_kernels();
  at::parallel_for(0, n, std::max<int64_t>(1, (int64_t{1} << 15) / f),
                   [&](int64_t b, int64_t e) { kern.requant_rows(a, b, e); });
  return out;
}

at::Tensor pack_int4(const at::Tensor& q) {
  TORCH_CHECK(q.defined() && q.device().is_cpu() && q.dim() == 2 && q.scalar_type() == at::kChar,
              "pack_int4: q must be a 2-D CPU int8 tensor, got ",
              q.defined() ? q.scalar_type() : at::ScalarType::Undefined, " ",
              q.defined() ? q.sizes() : at::IntArrayRef{});
  const at::Tensor c = q.contiguous();
  const int64_t n = c.size(0), f = c.size(1), bytes = ceil_div(f, 2);
  at::Tensor out = at::empty({n, bytes}, at::kByte);
  const int8_t* src = c.data_ptr<int8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  const Int8Kernels& kern = quant_cpu::int8_kernels();
  std::atomic<int64_t> bad_row{n};
  at::parallel_for(0, n, std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, f)),
                   [&](int64_t b, int64_t e) {
                     for (int64_t i = b; i < e; ++i) {
                       if (!kern.pack_int4_row(src + i * f, f, dst + i * bytes)) {
                         int64_t cur = bad_row.load();
                         while (i < cur && !bad_row.compare_exchange_weak(cur, i)) {
                         }
                       }
                     }
                   });
  const int64_t br = bad_row.load();
  if (br < n) {
    for (int64_t t = 0; t < f; ++t) {
      const int v = src[br * f + t];
      TORCH_CHECK(v >= -8 && v <= 7, "pack_int4: q[", br, ", ", t, "] = ", v,
                  " is outside the int4 range [-8, 7]");
    }
  }
  return out;
}

at::Tensor unpack_int4(const at::Tensor& packed, int64_t num_features) {
  TORCH_CHECK(num_features >= 0, "unpack_int4: num_features must be >= 0, got ", num_features);
  check_matrix(packed, at::kByte, ceil_div(num_features, 2), "unpack_int4", "packed");
  const at::Tensor c = packed.contiguous();
  const int64_t n = c.size(0), f = num_features, bytes = c.size(1);
  at::Tensor out = at::empty({n, f}, at::kChar);
  const uint8_t* src = c.data_ptr<uint8_t>();
  int8_t* dst = out.data_ptr<int8_t>();
  const Int8Kernels& kern = quant_cpu::int8_kernels();
  at::parallel_for(0, n, std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, f)),
                   [&](int64_t b, int64_t e) {
                     for (int64_t i = b; i < e; ++i)
                       kern.unpack_int4_row(src + i * bytes, f, dst + i * f);
                   });
  return out;
}

const char* int8_kernel_isa() { return quant_cpu::int8_path_name(quant_cpu::int8_path()); }

}  // namespace qgnn
