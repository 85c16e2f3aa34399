// Integer kernels (qgnn/quant/int8_ops.h) against int64 ATen references, the scalar
// reference path and the float oracle quantize(ref(dequantize(q))).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/kernels.h"
#include "qgnn/quant/int8_ops.h"
#include "quant/cpu/int8_kernel.h"
#include "testing/graphs.h"
#include "testing/guards.h"

namespace qgnn {
namespace {

using quant_cpu::Int8Path;
using testing::bitwise_equal;
using testing::IsaGuard;
using testing::random_graph;
using testing::ThreadGuard;

// Caps the integer kernel path for the guard's lifetime.
struct PathGuard {
  explicit PathGuard(Int8Path p) { quant_cpu::set_int8_path_cap(p); }
  ~PathGuard() { quant_cpu::set_int8_path_cap(Int8Path::kAvx512Vnni); }
};

// One way to reach each path this CPU has: (ISA limit, path cap). The AVX2 path is reached
// through set_isa_limit(kAvx2) with the cap left at VNNI, as a user's QGNN_ISA=avx2 would.
struct PathCase {
  cpu::Isa isa;
  Int8Path cap;
  Int8Path expect;
};

std::vector<PathCase> simd_paths() {
  std::vector<PathCase> v{{cpu::Isa::kAvx2, Int8Path::kAvx512Vnni, Int8Path::kAvx2}};
  if (cpu::cpu_has_avx512()) {
    v.push_back({cpu::Isa::kAvx512, Int8Path::kAvx512, Int8Path::kAvx512});
    if (cpu::cpu_has_avx512_vnni()) {
      v.push_back({cpu::Isa::kAvx512, Int8Path::kAvx512Vnni, Int8Path::kAvx512Vnni});
    }
  }
  return v;
}

// Runs fn() on the scalar reference, then on every SIMD path at 1 and 2 threads, and
// expects bitwise-equal results; returns the reference result.
template <class F>
at::Tensor expect_same_on_all_paths(const F& fn, const std::string& what) {
  at::Tensor ref;
  {
    PathGuard pg(Int8Path::kScalar);
    EXPECT_STREQ(int8_kernel_isa(), "scalar");
    ref = fn();
  }
  for (const PathCase& c : simd_paths()) {
    for (int threads : {1, 2}) {
      IsaGuard ig(c.isa);
      PathGuard pg(c.cap);
      ThreadGuard tg(threads);
      EXPECT_EQ(quant_cpu::int8_path(), c.expect);
      const at::Tensor out = fn();
      EXPECT_TRUE(bitwise_equal(out, ref))
          << what << ": path " << int8_kernel_isa() << " threads " << threads << " max diff "
          << (out.to(at::kLong) - ref.to(at::kLong)).abs().max().item<int64_t>();
    }
  }
  return ref;
}

at::Tensor random_codes(int64_t n, int64_t f, int lo, int hi, uint64_t seed) {
  at::manual_seed(static_cast<int64_t>(seed));
  return at::randint(lo, hi + 1, {n, f}, at::kChar);
}

// Random multipliers as [n, 2] (m, shift) rows, reals log-uniform in [lo, hi].
at::Tensor random_multipliers(int64_t n, double lo, double hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(std::log(lo), std::log(hi));
  at::Tensor r = at::empty({n}, at::kDouble);
  for (int64_t i = 0; i < n; ++i) r[i] = std::exp(u(rng));
  return fixed_point_multipliers(r);
}

// Exact value of acc * m * 2^-s as long double (64-bit mantissa: acc * m has <= 62 bits).
long double exact_scaled(int64_t acc, int32_t m, int s) {
  return std::ldexp(static_cast<long double>(acc * static_cast<int64_t>(m)), -s);
}

TEST(Int8Requant, FromRealRoundTrip) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(std::log(1e-9), std::log(30000.0));
  for (int t = 0; t < 10000; ++t) {
    const double M = std::exp(u(rng));
    const FixedPointMultiplier f = FixedPointMultiplier::from_real(M);
    EXPECT_GE(f.m, int64_t{1} << 30);
    EXPECT_GE(f.shift, -31);
    EXPECT_LE(f.shift, 16);
    EXPECT_NEAR(f.to_real() / M, 1.0, std::ldexp(1.0, -31)) << M;
  }
  EXPECT_EQ(FixedPointMultiplier::from_real(1.0).m, int32_t{1} << 30);
  EXPECT_EQ(FixedPointMultiplier::from_real(1.0).shift, 1);
  EXPECT_EQ(FixedPointMultiplier::from_real(0.5).shift, 0);
  // Below 2^-32 every accumulator rounds to 0: the zero multiplier.
  EXPECT_EQ(FixedPointMultiplier::from_real(1e-12).m, 0);
  EXPECT_EQ(FixedPointMultiplier::from_real(std::ldexp(1.0, -32)).m, int32_t{1} << 30);
  for (double bad : {0.0, -1.0, 32768.0, 1e9, std::nan(""), HUGE_VAL}) {
    EXPECT_THROW(FixedPointMultiplier::from_real(bad), c10::Error) << bad;
  }
}

TEST(Int8Requant, CombineIsTheRoundedProduct) {
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> u(std::log(1e-6), std::log(100.0));
  for (int t = 0; t < 10000; ++t) {
    const FixedPointMultiplier a = FixedPointMultiplier::from_real(std::exp(u(rng)));
    const FixedPointMultiplier b = FixedPointMultiplier::from_real(std::exp(u(rng)));
    const FixedPointMultiplier c = FixedPointMultiplier::combine(a, b);
    if (a.shift + b.shift < -31) {  // product below 2^-32: the zero multiplier
      EXPECT_EQ(c.m, 0);
      continue;
    }
    EXPECT_EQ(c.m, (int64_t{a.m} * b.m + (int64_t{1} << 30)) >> 31);
    EXPECT_EQ(c.shift, a.shift + b.shift);
    EXPECT_NEAR(c.to_real() / (a.to_real() * b.to_real()), 1.0, std::ldexp(1.0, -28));
  }
  const FixedPointMultiplier tiny = FixedPointMultiplier::from_real(1e-6);
  EXPECT_EQ(FixedPointMultiplier::combine(tiny, tiny).m, 0);  // 1e-12 < 2^-32
  // from_real gives shift <= 16; raw multipliers may carry shifts up to 30.
  EXPECT_NO_THROW(FixedPointMultiplier::combine({1 << 30, 15}, {1 << 30, 15}));
  EXPECT_THROW(FixedPointMultiplier::combine({1 << 30, 20}, {1 << 30, 11}), c10::Error);
}

// requantize() against the exact rational value rounded half away from zero (long double
// holds acc * m exactly), including ties and the int32 extremes.
TEST(Int8Requant, ScalarRuleIsRoundHalfAwayFromZero) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(std::log(1e-10), std::log(1000.0));
  std::uniform_int_distribution<int32_t> acc_dist(INT32_MIN, INT32_MAX);
  const QuantRange wide{0, -128, 127, false};
  for (int t = 0; t < 200000; ++t) {
    const FixedPointMultiplier f = FixedPointMultiplier::from_real(std::exp(u(rng)));
    int32_t acc = acc_dist(rng) >> (t % 31);
    if (t % 7 == 0) acc = t % 2 ? INT32_MIN : INT32_MAX;
    const long double v = exact_scaled(acc, f.m, 31 - f.shift);
    const long double expect = std::clamp<long double>(std::round(v), -128, 127);
    ASSERT_EQ(requantize(acc, f, wide), static_cast<int32_t>(expect))
        << acc << " * " << f.m << " 2^" << f.shift - 31;
  }
  // Exact ties: 1 * 0.5, -1 * 0.5, 3 * 0.5, -3 * 0.5 -> 1, -1, 2, -2.
  const FixedPointMultiplier half = FixedPointMultiplier::from_real(0.5);
  EXPECT_EQ(requantize(1, half, wide), 1);
  EXPECT_EQ(requantize(-1, half, wide), -1);
  EXPECT_EQ(requantize(3, half, wide), 2);
  EXPECT_EQ(requantize(-3, half, wide), -2);
  EXPECT_EQ(requantize(-5, half, wide), -3);
  // Zero point, clamp and ReLU (clamp at the zero point).
  EXPECT_EQ(requantize(100, half, QuantRange{3, -7, 7, false}), 7);
  EXPECT_EQ(requantize(-100, half, QuantRange{3, -7, 7, false}), -7);
  EXPECT_EQ(requantize(-4, half, QuantRange{3, -7, 7, false}), 1);
  EXPECT_EQ(requantize(-4, half, QuantRange{3, -7, 7, true}), 3);
  EXPECT_THROW(requantize(1, half, QuantRange{0, 5, 4, false}), c10::Error);
  EXPECT_THROW(requantize(1, half, QuantRange{9, -7, 7, false}), c10::Error);
}

const std::vector<int64_t> kIns = {1, 3, 5, 17, 64, 767};
const std::vector<int64_t> kOuts = {1, 7, 16, 64, 65};

TEST(Int8Linear, S32EqualsInt64MatmulOnEveryPath) {
  for (int64_t in : kIns) {
    for (int64_t out : kOuts) {
      const int64_t n = 37;
      const at::Tensor x = random_codes(n, in, -127, 127, in * 100 + out);
      const at::Tensor w = random_codes(out, in, -127, 127, in * 100 + out + 1);
      const Int8Linear lin = pack_int8_linear(w);
      const at::Tensor expect = at::mm(x.to(at::kLong), w.to(at::kLong).t());
      const std::string what = "in " + std::to_string(in) + " out " + std::to_string(out);
      const at::Tensor got =
          expect_same_on_all_paths([&] { return int8_linear_s32(x, lin); }, what);
      ASSERT_EQ(got.scalar_type(), at::kInt);
      EXPECT_TRUE(at::equal(got.to(at::kLong), expect)) << what;
    }
  }
}

TEST(Int8Linear, ExtremeValues) {
  for (int64_t in : {5, 767, 4099}) {
    for (int sx : {-127, 127, -128}) {
      for (int sw : {-127, 127}) {
        const at::Tensor x = at::full({13, in}, sx, at::kChar);
        const at::Tensor w = at::full({65, in}, sw, at::kChar);
        const Int8Linear lin = pack_int8_linear(w);
        const at::Tensor got = expect_same_on_all_paths([&] { return int8_linear_s32(x, lin); },
                                                        "extreme in " + std::to_string(in));
        EXPECT_TRUE(at::equal(got.to(at::kLong), at::full({13, 65}, in * sx * sw, at::kLong)));
      }
    }
  }
}

TEST(Int8Linear, RowsBeyondOneBlockAndManyThreads) {
  // 1000 rows: several row blocks per thread and partial blocks at chunk ends.
  const at::Tensor x = random_codes(1000, 130, -127, 127, 5);
  const at::Tensor w = random_codes(200, 130, -127, 127, 6);
  const Int8Linear lin = pack_int8_linear(w);
  const at::Tensor got = expect_same_on_all_paths([&] { return int8_linear_s32(x, lin); }, "1000");
  EXPECT_TRUE(at::equal(got.to(at::kLong), at::mm(x.to(at::kLong), w.to(at::kLong).t())));
}

// Fused requantization: all paths equal the scalar reference, which is checked against the
// int64 matmul + requantize() element by element.
TEST(Int8Linear, FusedRequantMatchesReference) {
  int cases = 0;
  for (int64_t in : {3, 64, 767}) {
    for (int64_t out : {7, 64, 65}) {
      const int64_t n = 23;
      const at::Tensor x = random_codes(n, in, -127, 127, in + out);
      const at::Tensor w = random_codes(out, in, -127, 127, in + out + 1);
      const Int8Linear lin = pack_int8_linear(w);
      const at::Tensor acc = at::mm(x.to(at::kLong), w.to(at::kLong).t());
      for (int variant = 0; variant < 4; ++variant) {
        LinearRequant rq;
        const double base = 1.0 / (40.0 * std::sqrt(static_cast<double>(in)));
        rq.col_multiplier = random_multipliers(out, base / 4, base * 4, variant + 10);
        if (variant >= 1) rq.bias = at::randint(-20000, 20000, {out}, at::kInt);
        if (variant >= 2) rq.row_multiplier = random_multipliers(n, 0.1, 1.0, variant + 20);
        if (variant == 3) {
          rq.out = QuantRange{2, -7, 7, true};
        } else if (variant == 1) {
          rq.col_multiplier = rq.col_multiplier.narrow(0, 0, 1);  // per tensor
          rq.out = QuantRange::int8(true);
        }
        const std::string what = "in " + std::to_string(in) + " out " + std::to_string(out) +
                                 " variant " + std::to_string(variant);
        const at::Tensor got =
            expect_same_on_all_paths([&] { return int8_linear(x, lin, rq); }, what);
        ASSERT_EQ(got.scalar_type(), at::kChar);
        const auto cm = rq.col_multiplier.accessor<int32_t, 2>();
        const auto pa = acc.accessor<int64_t, 2>();
        const auto pg = got.accessor<int8_t, 2>();
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t o = 0; o < out; ++o) {
            const int64_t c = rq.col_multiplier.size(0) == 1 ? 0 : o;
            FixedPointMultiplier m{cm[c][0], static_cast<int>(cm[c][1])};
            if (rq.row_multiplier.defined()) {
              const auto rm = rq.row_multiplier.accessor<int32_t, 2>();
              m = FixedPointMultiplier::combine({rm[i][0], static_cast<int>(rm[i][1])}, m);
            }
            const int64_t a = pa[i][o] + (rq.bias.defined() ? rq.bias[o].item<int32_t>() : 0);
            ASSERT_EQ(pg[i][o], requantize(static_cast<int32_t>(a), m, rq.out))
                << what << " at " << i << ", " << o;
          }
        }
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 36);
}

// y = quantize((s_x x_q)(s_w w_q)^T + b) computed in double vs the integer layer; codes may
// differ by one only where the double value sits on a rounding tie (up to the 2^-31 error of
// the fixed-point multiplier).
TEST(Int8Linear, FloatOracle) {
  const int64_t n = 300, in = 767, out = 64;
  const at::Tensor x = random_codes(n, in, -127, 127, 41);
  const at::Tensor w = random_codes(out, in, -127, 127, 42);
  const double s_x = 0.013, s_y = 0.9;
  at::manual_seed(43);
  const at::Tensor s_w = (at::rand({out}, at::kDouble) + 0.5) * 0.002;
  const at::Tensor bias = at::randint(-5000, 5000, {out}, at::kInt);
  const at::Tensor dinv = 1.0 / at::randint(1, 50, {n}, at::kDouble).sqrt();  // GCN's d^-1/2
  for (bool per_row : {false, true}) {
    LinearRequant rq;
    rq.col_multiplier = fixed_point_multipliers(s_w * (s_x / s_y));
    rq.bias = bias;
    if (per_row) rq.row_multiplier = fixed_point_multipliers(dinv);
    const at::Tensor got = int8_linear(x, pack_int8_linear(w), rq);
    // Oracle: dequantize, compute in double, quantize.
    at::Tensor y = at::mm(x.to(at::kDouble) * s_x, (w.to(at::kDouble) * s_w.unsqueeze(1)).t()) +
                   bias.to(at::kDouble) * s_w * s_x;
    if (per_row) y = y * dinv.unsqueeze(1);
    const at::Tensor v = y / s_y;
    const at::Tensor oracle = v.round().clamp(-127, 127).to(at::kLong);
    const at::Tensor diff = (got.to(at::kLong) - oracle).abs();
    EXPECT_LE(diff.max().item<int64_t>(), 1);
    const at::Tensor off = diff.ne(0);
    const int64_t mismatches = off.sum().item<int64_t>();
    // Every mismatch is a near-tie: |frac(v)| within 1e-6 of 0.5.
    const at::Tensor dist = ((v - v.floor()) - 0.5).abs();
    EXPECT_TRUE(dist.masked_select(off).le(1e-6).all().item<bool>());
    EXPECT_LE(mismatches, 2) << "per_row " << per_row;
    RecordProperty(per_row ? "ties_per_row" : "ties_per_channel", static_cast<int>(mismatches));
  }
}

at::Tensor dense_sum(const CsrGraph& g, const at::Tensor& x) {
  at::Tensor a = at::zeros({g.num_rows(), g.num_cols()}, at::kLong);
  a.index_put_({g.row_ids(), g.indices()}, at::ones({g.num_edges()}, at::kLong), true);
  return at::mm(a, x.to(at::kLong));
}

const std::vector<int64_t> kFeatures = {1, 15, 16, 64, 100, 256, 257, 300};

TEST(Int8Spmm, S32EqualsDenseReference) {
  // 600 nodes: node 0 is a hub of in-degree 597 (> 256: the int16 flush), 3 isolated nodes.
  const CsrGraph g = random_graph(600, 5, 7, /*isolated=*/3);
  for (int64_t f : kFeatures) {
    const at::Tensor x = random_codes(600, f, -128, 127, f);
    const std::string what = "F " + std::to_string(f);
    const at::Tensor got = expect_same_on_all_paths([&] { return int8_spmm_s32(g, x); }, what);
    EXPECT_TRUE(at::equal(got.to(at::kLong), dense_sum(g, x))) << what;
    EXPECT_TRUE(at::equal(got.narrow(0, 597, 3), at::zeros({3, f}, at::kInt))) << what;
  }
}

TEST(Int8Spmm, HubAtTheExtremes) {
  const CsrGraph g = random_graph(1100, 2, 8, 0);  // hub in-degree 1099
  for (int v : {-128, 127}) {
    for (int64_t f : {10, 16, 64}) {  // the narrow kernel (F <= 16) and the general one
      const at::Tensor x = at::full({1100, f}, v, at::kChar);
      const at::Tensor got = expect_same_on_all_paths([&] { return int8_spmm_s32(g, x); }, "hub");
      EXPECT_TRUE(at::equal(got.to(at::kLong), dense_sum(g, x)));
      EXPECT_EQ(got[0][0].item<int32_t>(), v * g.indptr()[1].item<int64_t>());
    }
  }
}

// Rows of at most 16 bytes (int8 F <= 16, int4 F <= 32) take the narrow kernel: two source
// rows per vector, four edges per step, the last 0-3 edges of a row in one step. Every width,
// in-degrees 0..9 (every residue mod 4), a hub above the int16 flush (597 edges), and edges
// from the last rows of x (read through a copy when 16 bytes would pass the end of x).
TEST(Int8Spmm, NarrowRowsEveryWidth) {
  const CsrGraph g = random_graph(600, 4.5, 14, 3);
  const at::Tensor mult = random_multipliers(600, 0.005, 0.5, 15);
  SpmmRequant rq8;
  rq8.row_multiplier = mult;
  rq8.self_weight = -3;
  rq8.out = QuantRange{1, -127, 127, true};
  SpmmRequant rq4;
  rq4.row_multiplier = mult;
  rq4.self_weight = 2;
  rq4.out = QuantRange::int4();
  for (int64_t f = 1; f <= 32; ++f) {
    const std::string what = "F " + std::to_string(f);
    const at::Tensor x = random_codes(600, std::min<int64_t>(f, 16), -128, 127, f + 20);
    const at::Tensor q = random_codes(600, f, -8, 7, f + 40);
    const at::Tensor p = pack_int4(q);
    // One comparison across paths of: int8 s32 and requantized (F <= 16), int4 s32 and
    // requantized, all widened to int32 and flattened.
    const at::Tensor all = expect_same_on_all_paths(
        [&] {
          std::vector<at::Tensor> v{int4_spmm_s32(g, p, f).reshape({-1}),
                                    int4_spmm(g, p, f, rq4).to(at::kInt).reshape({-1})};
          if (f <= 16) {
            v.push_back(int8_spmm_s32(g, x).reshape({-1}));
            v.push_back(int8_spmm(g, x, rq8).to(at::kInt).reshape({-1}));
          }
          return at::cat(v);
        },
        what);
    const int64_t numel = 600 * f;
    EXPECT_TRUE(at::equal(all.narrow(0, 0, numel).view({600, f}).to(at::kLong), dense_sum(g, q)))
        << what;
    EXPECT_TRUE(
        at::equal(all.narrow(0, numel, numel).view({600, f}), int8_spmm(g, q, rq4).to(at::kInt)))
        << what;
    if (f > 16) continue;
    const at::Tensor sums = all.narrow(0, 2 * numel, numel).view({600, f}).to(at::kLong);
    EXPECT_TRUE(at::equal(sums, dense_sum(g, x))) << what;
    const at::Tensor got_q = all.narrow(0, 3 * numel, numel).view({600, f});
    const at::Tensor v = sums + x.to(at::kLong) * rq8.self_weight;
    const auto pm = mult.accessor<int32_t, 2>();
    const auto pv = v.accessor<int64_t, 2>();
    const auto pg = got_q.accessor<int32_t, 2>();
    for (int64_t i = 0; i < 600; ++i) {
      const FixedPointMultiplier m{pm[i][0], static_cast<int>(pm[i][1])};
      for (int64_t t = 0; t < f; ++t) {
        ASSERT_EQ(pg[i][t], requantize(static_cast<int32_t>(pv[i][t]), m, rq8.out)) << what;
      }
    }
  }
}

// The narrow kernel's software-prefetch variant (x above 4 MB), against the scalar reference.
TEST(Int8Spmm, NarrowRowsWithPrefetch) {
  const int64_t n = 300000;  // 16-byte rows: 4.8 MB
  const CsrGraph g = random_graph(n, 1.5, 16, 2);
  for (int64_t f : {15, 16}) {
    const at::Tensor x = random_codes(n, f, -128, 127, f + 60);
    expect_same_on_all_paths([&] { return int8_spmm_s32(g, x); },
                             "prefetch F " + std::to_string(f));
  }
  const at::Tensor p = pack_int4(random_codes(n, 32, -8, 7, 61));
  expect_same_on_all_paths([&] { return int4_spmm_s32(g, p, 32); }, "prefetch int4");
}

// A rectangular CSR whose rows read the last rows of x (loads past the end of x must not
// happen): out 0 <- all, out 1 <- C-1, C-2, out 2 <- none, out 3 <- C-1 twice.
TEST(Int8Spmm, ReadsLastRowsOfX) {
  const int64_t c = 9;
  std::vector<int64_t> indptr{0}, indices;
  for (int64_t j = 0; j < c; ++j) indices.push_back(j);
  indptr.push_back(static_cast<int64_t>(indices.size()));
  indices.insert(indices.end(), {c - 1, c - 2});
  indptr.push_back(static_cast<int64_t>(indices.size()));
  indptr.push_back(static_cast<int64_t>(indices.size()));
  indices.insert(indices.end(), {c - 1, c - 1});
  indptr.push_back(static_cast<int64_t>(indices.size()));
  const CsrGraph g(at::tensor(indptr, at::kLong), at::tensor(indices, at::kLong), {}, c);
  for (int64_t f : {1, 3, 15, 33, 100}) {
    const at::Tensor x = random_codes(c, f, -127, 127, f + 1);
    const at::Tensor got = expect_same_on_all_paths([&] { return int8_spmm_s32(g, x); }, "last");
    EXPECT_TRUE(at::equal(got.to(at::kLong), dense_sum(g, x))) << f;
    const at::Tensor xp = pack_int4(random_codes(c, f, -8, 7, f + 2));
    const at::Tensor got4 =
        expect_same_on_all_paths([&] { return int4_spmm_s32(g, xp, f); }, "last int4");
    EXPECT_TRUE(at::equal(got4.to(at::kLong), dense_sum(g, unpack_int4(xp, f)))) << f;
  }
}

TEST(Int8Spmm, FusedRequantMatchesReference) {
  const CsrGraph g = random_graph(700, 6, 9, 2);
  for (int64_t f : {1, 16, 64, 100, 300}) {
    const at::Tensor x = random_codes(700, f, -127, 127, f + 5);
    const at::Tensor sums = dense_sum(g, x);
    for (int variant = 0; variant < 3; ++variant) {
      SpmmRequant rq;
      rq.row_multiplier = random_multipliers(700, 0.002, 0.5, variant + f);
      if (variant == 1) {
        rq.self_weight = 3;
        rq.out = QuantRange::int8(true);
      } else if (variant == 2) {
        rq.row_multiplier = rq.row_multiplier.narrow(0, 0, 1);
        rq.self_weight = -2;
        rq.out = QuantRange{-1, -7, 7, false};
      }
      const std::string what = "F " + std::to_string(f) + " variant " + std::to_string(variant);
      const at::Tensor got = expect_same_on_all_paths([&] { return int8_spmm(g, x, rq); }, what);
      const auto rm = rq.row_multiplier.accessor<int32_t, 2>();
      const auto ps = sums.accessor<int64_t, 2>();
      const auto px = x.accessor<int8_t, 2>();
      const auto pg = got.accessor<int8_t, 2>();
      for (int64_t i = 0; i < 700; ++i) {
        const int64_t r = rq.row_multiplier.size(0) == 1 ? 0 : i;
        const FixedPointMultiplier m{rm[r][0], static_cast<int>(rm[r][1])};
        for (int64_t t = 0; t < f; ++t) {
          const int64_t a = ps[i][t] + int64_t{rq.self_weight} * px[i][t];
          ASSERT_EQ(pg[i][t], requantize(static_cast<int32_t>(a), m, rq.out)) << what;
        }
      }
    }
  }
}

// GCN aggregation y_i = d_i^-1/2 sum_j x_j (x already scaled by d_j^-1/2) in double vs the
// integer kernel with row multipliers s_x d_i^-1/2 / s_y.
TEST(Int8Spmm, FloatOracle) {
  const CsrGraph g = random_graph(2000, 10, 10, 2).with_self_loops();
  const at::Tensor x = random_codes(2000, 64, -127, 127, 11);
  // Scales without a common rational structure: exact ties (sum * M = k + 1/2) do not occur.
  const double s_x = 0.0213, s_y = 0.0517;
  const at::Tensor dinv = 1.0 / g.in_degree().to(at::kDouble).sqrt();
  SpmmRequant rq;
  rq.row_multiplier = fixed_point_multipliers(dinv * (s_x / s_y));
  const at::Tensor got = int8_spmm(g, x, rq);
  const at::Tensor v = dense_sum(g, x).to(at::kDouble) * s_x * dinv.unsqueeze(1) / s_y;
  const at::Tensor oracle = v.round().clamp(-127, 127).to(at::kLong);
  const at::Tensor diff = (got.to(at::kLong) - oracle).abs();
  EXPECT_LE(diff.max().item<int64_t>(), 1);
  const at::Tensor off = diff.ne(0);
  const at::Tensor dist = ((v - v.floor()) - 0.5).abs();
  EXPECT_TRUE(dist.masked_select(off).le(1e-6).all().item<bool>());
  EXPECT_LE(off.sum().item<int64_t>(), 2);
  RecordProperty("ties", static_cast<int>(off.sum().item<int64_t>()));
}

TEST(Int8Spmm, RejectsBadInput) {
  const CsrGraph g = random_graph(10, 2, 12, 0);
  const at::Tensor x = random_codes(10, 4, -127, 127, 1);
  EXPECT_THROW(int8_spmm_s32(g, x.to(at::kInt)), c10::Error);
  EXPECT_THROW(int8_spmm_s32(g, x.narrow(0, 0, 9)), c10::Error);
  EXPECT_THROW(int8_spmm_s32(g, x.view({40})), c10::Error);
  SpmmRequant rq;
  EXPECT_THROW(int8_spmm(g, x, rq), c10::Error);  // no multiplier
  rq.row_multiplier = at::tensor({int32_t{1} << 30, 1}, at::kInt).view({1, 2});
  EXPECT_NO_THROW(int8_spmm(g, x, rq));
  rq.row_multiplier = at::tensor({int32_t{1} << 30, 40}, at::kInt).view({1, 2});
  EXPECT_THROW(int8_spmm(g, x, rq), c10::Error);  // shift out of range
  rq.row_multiplier = at::tensor({int32_t{1} << 30, 1}, at::kInt).view({1, 2}).repeat({3, 1});
  EXPECT_THROW(int8_spmm(g, x, rq), c10::Error);  // 3 rows for 10
  rq.row_multiplier = rq.row_multiplier.narrow(0, 0, 1);
  rq.out = QuantRange{0, 3, 2, false};
  EXPECT_THROW(int8_spmm(g, x, rq), c10::Error);
  rq.out = QuantRange::int8();
  rq.self_weight = 1 << 24;
  EXPECT_THROW(int8_spmm(g, x, rq), c10::Error);  // 128 (deg + c) overflows
  try {
    int8_spmm_s32(g, x.to(at::kFloat));
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("x_q"), std::string::npos);
  }
}

TEST(Int8Linear, RejectsBadInput) {
  EXPECT_THROW(pack_int8_linear(at::zeros({4, 3}, at::kFloat)), c10::Error);
  EXPECT_THROW(pack_int8_linear(at::zeros({0, 3}, at::kChar)), c10::Error);
  EXPECT_THROW(pack_int8_linear(at::zeros({2, 131072}, at::kChar)), c10::Error);
  const Int8Linear lin = pack_int8_linear(at::ones({4, 3}, at::kChar));
  EXPECT_THROW(int8_linear_s32(at::zeros({2, 4}, at::kChar), lin), c10::Error);
  EXPECT_THROW(int8_linear_s32(at::zeros({2, 3}, at::kByte), lin), c10::Error);
  EXPECT_THROW(int8_linear_s32(at::zeros({2, 3}, at::kChar), Int8Linear{}), c10::Error);
  LinearRequant rq;
  EXPECT_THROW(int8_linear(at::zeros({2, 3}, at::kChar), lin, rq), c10::Error);
  rq.col_multiplier = fixed_point_multipliers(at::full({4}, 0.1, at::kDouble));
  EXPECT_NO_THROW(int8_linear(at::zeros({2, 3}, at::kChar), lin, rq));
  rq.bias = at::zeros({3}, at::kInt);
  EXPECT_THROW(int8_linear(at::zeros({2, 3}, at::kChar), lin, rq), c10::Error);
  rq.bias = at::full({4}, INT32_MAX, at::kInt);
  EXPECT_THROW(int8_linear(at::zeros({2, 3}, at::kChar), lin, rq), c10::Error);
  rq.bias = at::Tensor();
  rq.row_multiplier = at::tensor({int32_t{1} << 30, 20}, at::kInt).view({1, 2});
  rq.col_multiplier = at::tensor({int32_t{1} << 30, 11}, at::kInt).view({1, 2});
  EXPECT_THROW(int8_linear(at::zeros({2, 3}, at::kChar), lin, rq), c10::Error);
  EXPECT_THROW(fixed_point_multipliers(at::tensor({0.5, -1.0}, at::kDouble)), c10::Error);
}

TEST(Int4, PackUnpackRoundTrip) {
  for (int64_t f : {1, 2, 7, 31, 32, 33, 64, 65, 257}) {
    const at::Tensor q = random_codes(19, f, -8, 7, f);
    for (const PathCase& c : simd_paths()) {
      IsaGuard ig(c.isa);
      PathGuard pg(c.cap);
      const at::Tensor p = pack_int4(q);
      ASSERT_EQ(p.sizes(), (at::IntArrayRef{19, (f + 1) / 2}));
      EXPECT_TRUE(at::equal(unpack_int4(p, f), q)) << f;
      // Nibble order: element 2t in the low nibble of byte t.
      EXPECT_EQ(p[3][0].item<uint8_t>() & 0x0F, q[3][0].item<int8_t>() & 0x0F);
      if (f > 1) {
        EXPECT_EQ(p[3][0].item<uint8_t>() >> 4, q[3][1].item<int8_t>() & 0x0F);
      }
      if (f % 2 == 1) {
        EXPECT_EQ(p[5][f / 2].item<uint8_t>() >> 4, 0);
      }
      PathGuard ref(Int8Path::kScalar);
      EXPECT_TRUE(at::equal(pack_int4(q), p));
    }
  }
  at::Tensor bad = at::zeros({3, 40}, at::kChar);
  bad[2][33] = 8;
  try {
    pack_int4(bad);
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("q[2, 33] = 8"), std::string::npos)
        << e.what_without_backtrace();
  }
  bad[2][33] = -9;
  EXPECT_THROW(pack_int4(bad), c10::Error);
  EXPECT_THROW(unpack_int4(at::zeros({3, 4}, at::kByte), 9), c10::Error);
}

TEST(Int4, SpmmEqualsInt8PathOnUnpackedValues) {
  // Hub of in-degree 4998 (> 4096: the int4 flush).
  const CsrGraph g = random_graph(5000, 3, 13, 1);
  for (int64_t f : {1, 15, 16, 64, 100, 256, 300}) {
    at::Tensor q = random_codes(5000, f, -7, 7, f + 3);
    q.narrow(0, 0, 2500).fill_(-8);  // the hub's sum reaches -8 * 2500 + ...
    const at::Tensor p = pack_int4(q);
    const std::string what = "F " + std::to_string(f);
    const at::Tensor got = expect_same_on_all_paths([&] { return int4_spmm_s32(g, p, f); }, what);
    EXPECT_TRUE(bitwise_equal(got, int8_spmm_s32(g, q))) << what;
    SpmmRequant rq;
    rq.row_multiplier = random_multipliers(5000, 0.001, 0.3, f);
    rq.self_weight = 1;
    rq.out = QuantRange::int4(true);
    const at::Tensor got_q =
        expect_same_on_all_paths([&] { return int4_spmm(g, p, f, rq); }, what + " requant");
    EXPECT_TRUE(bitwise_equal(got_q, int8_spmm(g, q, rq))) << what;
  }
}

TEST(Int4, LinearEqualsInt8PathOnUnpackedValues) {
  for (int64_t in : {1, 5, 64, 767}) {
    for (int64_t out : {7, 64, 65}) {
      const at::Tensor q = random_codes(29, in, -7, 7, in + out);
      const at::Tensor p = pack_int4(q);
      const Int8Linear lin = pack_int8_linear(random_codes(out, in, -127, 127, in * out));
      const std::string what = "in " + std::to_string(in) + " out " + std::to_string(out);
      const at::Tensor got =
          expect_same_on_all_paths([&] { return int4_linear_s32(p, lin); }, what);
      EXPECT_TRUE(bitwise_equal(got, int8_linear_s32(q, lin))) << what;
      LinearRequant rq;
      rq.col_multiplier = random_multipliers(out, 1e-3, 1e-2, in);
      rq.out = QuantRange::int4();
      const at::Tensor got_q =
          expect_same_on_all_paths([&] { return int4_linear(p, lin, rq); }, what + " requant");
      EXPECT_TRUE(bitwise_equal(got_q, int8_linear(q, lin, rq))) << what;
    }
  }
}

// The code requantize_rows must give for v = acc 2^k + c self + bias under multiplier m:
// requantize() when v fits int32, else the exact product v m (< 2^62: exact in long double)
// scaled and rounded half away from zero.
int32_t expected_code(int64_t v, FixedPointMultiplier m, const QuantRange& r) {
  if (v >= INT32_MIN && v <= INT32_MAX) return requantize(static_cast<int32_t>(v), m, r);
  const long double x =
      std::ldexp(static_cast<long double>(v) * static_cast<long double>(m.m), m.shift - 31);
  const long double lo = r.relu ? std::max(r.qmin, r.zero_point) : r.qmin;
  return static_cast<int32_t>(std::clamp<long double>(std::round(x) + r.zero_point, lo, r.qmax));
}

// The bytes requantize_rows must give, element by element (expected_code).
void expect_rows_match_rule(const at::Tensor& acc, const RowRequant& rq, const at::Tensor& got,
                            const std::string& what) {
  ASSERT_EQ(got.scalar_type(), at::kChar);
  ASSERT_EQ(got.sizes(), acc.sizes());
  const at::Tensor a = acc.to(at::kLong);
  const auto pa = a.accessor<int64_t, 2>();
  const auto pm = rq.row_multiplier.accessor<int32_t, 2>();
  const auto pg = got.accessor<int8_t, 2>();
  const bool self = rq.self_weight != 0;
  const at::Tensor s = self ? rq.self.to(at::kLong) : at::zeros({1, 1}, at::kLong);
  const auto ps = s.accessor<int64_t, 2>();
  const at::Tensor b = rq.bias.defined() ? rq.bias.to(at::kLong) : at::zeros({1}, at::kLong);
  const auto pb = b.accessor<int64_t, 1>();
  for (int64_t i = 0; i < acc.size(0); ++i) {
    const int64_t r = rq.row_multiplier.size(0) == 1 ? 0 : i;
    const FixedPointMultiplier m{pm[r][0], static_cast<int>(pm[r][1])};
    for (int64_t t = 0; t < acc.size(1); ++t) {
      const int64_t v = pa[i][t] * (int64_t{1} << rq.pre_shift) +
                        (self ? ps[i][t] * rq.self_weight : 0) + (rq.bias.defined() ? pb[t] : 0);
      ASSERT_EQ(pg[i][t], expected_code(v, m, rq.out)) << what << " at " << i << ", " << t;
    }
  }
}

// requantize_rows of several (acc, rq) cases on every path (1 and 2 threads) against the
// scalar reference (one comparison of all outputs concatenated), and the reference against
// expected_code element by element.
void check_requantize_rows(const std::vector<at::Tensor>& accs, const std::vector<RowRequant>& rqs,
                           const std::vector<std::string>& whats, const std::string& group) {
  const at::Tensor all = expect_same_on_all_paths(
      [&] {
        std::vector<at::Tensor> outs;
        for (size_t c = 0; c < accs.size(); ++c) {
          outs.push_back(requantize_rows(accs[c], rqs[c]).reshape({-1}));
        }
        return at::cat(outs);
      },
      group);
  int64_t off = 0;
  for (size_t c = 0; c < accs.size(); ++c) {
    const int64_t numel = accs[c].numel();
    expect_rows_match_rule(accs[c], rqs[c], all.narrow(0, off, numel).view(accs[c].sizes()),
                           whats[c]);
    off += numel;
  }
}

void check_requantize_rows(const at::Tensor& acc, const RowRequant& rq, const std::string& what) {
  check_requantize_rows({acc}, {rq}, {what}, what);
}

TEST(Int8RequantRows, MatchesRequantizeOnEveryPath) {
  const int64_t n = 37;
  int cases = 0;
  for (bool acc8 : {false, true}) {
    for (int pre_shift : {0, 8}) {
      for (int variant = 0; variant < 8; ++variant) {
        const bool self = (variant & 1) != 0, bias = (variant & 2) != 0;
        const bool per_row = (variant & 4) != 0;
        std::vector<at::Tensor> accs;
        std::vector<RowRequant> rqs;
        std::vector<std::string> whats;
        const std::string group = std::string(acc8 ? "int8" : "int32") + " pre_shift " +
                                  std::to_string(pre_shift) + " variant " + std::to_string(variant);
        for (int64_t f : {1, 7, 16, 64, 65, 100}) {
          const uint64_t seed = static_cast<uint64_t>(f * 100 + pre_shift * 10 + variant + acc8);
          // |acc 2^k| <= 2^30 (int32) or 2^15 (int8); self and bias of a similar size.
          const int64_t amax = acc8 ? 127 : (int64_t{1} << (30 - pre_shift));
          at::manual_seed(static_cast<int64_t>(seed));
          accs.push_back(acc8 ? random_codes(n, f, -128, 127, seed)
                              : at::randint(-amax, amax + 1, {n, f}, at::kInt));
          const int64_t vmax = (amax + 1) << pre_shift;
          RowRequant rq;
          rq.pre_shift = pre_shift;
          if (self) {
            rq.self = random_codes(n, f, -128, 127, seed + 1);
            rq.self_weight = static_cast<int32_t>(-(vmax / 512) - 3);
          }
          if (bias) rq.bias = at::randint(-vmax / 4, vmax / 4 + 1, {f}, at::kInt);
          // Outputs spread over about [-300, 300] before the clamp.
          rq.row_multiplier = random_multipliers(per_row ? n : 1, 50.0 / static_cast<double>(vmax),
                                                 300.0 / static_cast<double>(vmax), seed + 2);
          rq.out = variant % 3 == 0   ? QuantRange::int8(true)
                   : variant % 3 == 1 ? QuantRange::int8()
                                      : QuantRange{-2, -7, 7, variant > 4};
          rqs.push_back(rq);
          whats.push_back(group + " F " + std::to_string(f));
          ++cases;
        }
        check_requantize_rows(accs, rqs, whats, group);
      }
    }
  }
  EXPECT_EQ(cases, 192);
}

// Many rows: chunks split over threads (1 and 2 threads give the same bytes).
TEST(Int8RequantRows, ManyRowsAndThreads) {
  const int64_t n = 5000, f = 65;
  at::manual_seed(51);
  const at::Tensor acc = at::randint(-(1 << 22), 1 << 22, {n, f}, at::kInt);
  RowRequant rq;
  rq.pre_shift = 8;
  rq.self = random_codes(n, f, -127, 127, 52);
  rq.self_weight = 300;
  rq.bias = at::randint(-(1 << 28), 1 << 28, {f}, at::kInt);
  rq.row_multiplier = random_multipliers(n, 1e-8, 1e-6, 53);
  rq.out = QuantRange::int8(true);
  check_requantize_rows(acc, rq, "5000 rows");
}

// The int32 extremes (|v| up to 2^31 + 2^30 with m = 2^30: |v m| < 2^61), exact ties,
// large and zero multipliers, pre_shift 31 on int8 codes.
TEST(Int8RequantRows, ExtremeValues) {
  const int64_t f = 33;
  at::Tensor acc = at::empty({4, f}, at::kInt);
  acc[0].fill_(INT32_MIN);
  acc[1].fill_(INT32_MAX);
  acc[2] = at::arange(-16, 17, at::kInt);  // odd values: ties under M = 1/2
  acc[3] = at::arange(-16, 17, at::kInt) * 1000;
  const at::Tensor self = at::full({4, f}, -128, at::kChar);
  const at::Tensor bias = at::full({f}, -(1 << 30), at::kInt);
  const int32_t half = int32_t{1} << 30;  // m of 2^-k multipliers
  for (int32_t shift : {0, -20, -31}) {
    for (bool with_terms : {false, true}) {
      RowRequant rq;
      rq.row_multiplier = at::tensor({half, shift}, at::kInt).view({1, 2});
      rq.out = QuantRange{0, -128, 127, false};
      if (with_terms) {
        rq.self = self;
        rq.self_weight = 1 << 20;
        rq.bias = bias;
      }
      check_requantize_rows(acc, rq, "extreme shift " + std::to_string(shift));
    }
  }
  {
    RowRequant rq;  // per row: the zero multiplier, M = 2^16 - eps, M = 1/2, a small raw m
    rq.row_multiplier =
        at::tensor({0, -31, INT32_MAX, 16, half, 0, 12345, -5}, at::kInt).view({4, 2});
    check_requantize_rows(at::clamp(acc, -70000, 70000), rq, "extreme per-row");
  }
  for (int v : {-128, 127}) {
    RowRequant rq;
    rq.pre_shift = 31;
    rq.row_multiplier = at::tensor({1 << 20, -20}, at::kInt).view({1, 2});
    rq.out = QuantRange::int4(true);
    check_requantize_rows(at::full({3, 17}, v, at::kChar), rq, "int8 << 31");
    rq.pre_shift = 0;
    rq.self = at::full({3, 17}, v, at::kChar);
    rq.self_weight = -(1 << 23);
    check_requantize_rows(at::full({3, 17}, v, at::kChar), rq, "int8 self");
  }
}

TEST(Int8RequantRows, RejectsBadInput) {
  const at::Tensor acc = at::zeros({4, 3}, at::kInt);
  RowRequant rq;
  EXPECT_THROW(requantize_rows(acc, rq), c10::Error);  // no multiplier
  rq.row_multiplier = at::tensor({int32_t{1} << 30, 1}, at::kInt).view({1, 2});
  EXPECT_NO_THROW(requantize_rows(acc, rq));
  EXPECT_TRUE(
      at::equal(requantize_rows(at::zeros({0, 3}, at::kInt), rq), at::zeros({0, 3}, at::kChar)));
  EXPECT_THROW(requantize_rows(acc.to(at::kFloat), rq), c10::Error);
  EXPECT_THROW(requantize_rows(acc.view({12}), rq), c10::Error);
  EXPECT_THROW(requantize_rows(at::Tensor(), rq), c10::Error);
  RowRequant bad = rq;
  bad.row_multiplier = rq.row_multiplier.repeat({3, 1});  // 3 rows for 4
  EXPECT_THROW(requantize_rows(acc, bad), c10::Error);
  bad = rq;
  bad.pre_shift = 32;
  EXPECT_THROW(requantize_rows(acc, bad), c10::Error);
  bad.pre_shift = -1;
  EXPECT_THROW(requantize_rows(acc, bad), c10::Error);
  bad = rq;
  bad.bias = at::zeros({4}, at::kInt);
  EXPECT_THROW(requantize_rows(acc, bad), c10::Error);
  bad.bias = at::zeros({3}, at::kLong);
  EXPECT_THROW(requantize_rows(acc, bad), c10::Error);
  bad = rq;
  bad.self_weight = 2;  // no self
  EXPECT_THROW(requantize_rows(acc, bad), c10::Error);
  bad.self = at::zeros({4, 4}, at::kChar);
  EXPECT_THROW(requantize_rows(acc, bad), c10::Error);
  bad.self = at::zeros({3, 3}, at::kChar);
  EXPECT_THROW(requantize_rows(acc, bad), c10::Error);
  bad.self = at::zeros({4, 3}, at::kChar);
  EXPECT_NO_THROW(requantize_rows(acc, bad));
  bad.self_weight = 1 << 24;  // 128 |c| = 2^31
  EXPECT_THROW(requantize_rows(acc, bad), c10::Error);
  bad = rq;
  bad.out = QuantRange{5, -7, 7, false};
  bad.out.qmax = 4;
  EXPECT_THROW(requantize_rows(acc, bad), c10::Error);
  // int8 acc: (128 2^31) m >= 2^62 for m = 2^30.
  bad = rq;
  bad.pre_shift = 31;
  try {
    requantize_rows(at::zeros({4, 3}, at::kChar), bad);
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("pre_shift = 31"), std::string::npos)
        << e.what_without_backtrace();
  }
}

TEST(Int8Kernels, IsaFollowsTheLimit) {
  {
    IsaGuard ig(cpu::Isa::kAvx2);
    EXPECT_STREQ(int8_kernel_isa(), "avx2");
  }
  if (cpu::cpu_has_avx512_vnni()) {
    IsaGuard ig(cpu::Isa::kAvx512);
    EXPECT_STREQ(int8_kernel_isa(), "avx512_vnni");
  }
}

}  // namespace
}  // namespace qgnn
