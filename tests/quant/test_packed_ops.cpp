// packed_spmm, packed_linear and fake_quantize against dense ATen references on the
// decoded float matrix.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/kernels.h"
#include "qgnn/nn/layers.h"
#include "qgnn/quant/packed_tensor.h"
#include "quant/cpu/pack_kernel.h"
#include "testing/graphs.h"
#include "testing/guards.h"
#include "testing/packed.h"

namespace qgnn {
namespace {

using testing::bitwise_equal;
using testing::expect_spmm_close;
using testing::kAllGranularities;
using testing::kPackWidths;
using testing::random_groups;

using testing::IsaGuard;
using testing::isas;
using testing::ThreadGuard;

using testing::dense_adjacency;
using testing::random_graph;

// Features with an offset (so that the lo correction matters) and mixed scales.
at::Tensor features(int64_t n, int64_t f, uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({n, f}) * (at::rand({n, 1}) * 3 + 0.1) + 1.5;
}

TEST(PackedSpmm, MatchesDenseReference) {
  const CsrGraph g = random_graph(70, 4, 1, /*isolated=*/3, /*weighted=*/true);
  const at::Tensor a_w = dense_adjacency(g);
  const at::Tensor a_1 = dense_adjacency(g.with_weights(at::ones({g.num_edges()})));
  for (int bits : {1, 2, 3, 4, 5, 6, 7, 8, 16, 32}) {
    for (int64_t f : kPackWidths) {
      const PackedTensor x = PackedTensor::pack(features(70, f, bits * 100 + f),
                                                RowBits::uniform(bits), Granularity::kRow);
      const at::Tensor xhat = x.decode();
      const std::string what = "bits " + std::to_string(bits) + " F " + std::to_string(f);
      const at::Tensor out_w = packed_spmm(g.indptr(), g.indices(), g.weights(), x);
      expect_spmm_close(out_w, a_w, xhat, what + " weighted");
      const at::Tensor out_1 = packed_spmm(g.indptr(), g.indices(), at::Tensor(), x);
      expect_spmm_close(out_1, a_1, xhat, what + " unweighted");
      EXPECT_TRUE(bitwise_equal(packed_spmm(g, x), out_w)) << what;
      // Isolated rows (the last 3) are exactly zero.
      EXPECT_TRUE(at::equal(out_w.narrow(0, 67, 3), at::zeros({3, f}))) << what;
    }
  }
}

TEST(PackBlocks, EqualsPackingTheWholeMatrix) {
  // Every width, mixed row groups, every granularity, both roundings, blocks of uneven
  // sizes (some empty), one and two threads: codes, parameters and bytes equal pack().
  const int64_t n = 203, f = 9;
  at::manual_seed(3);
  const at::Tensor x = (at::rand({n, f}) < 0.6).to(at::kFloat) * at::randn({n, f}) * 2;
  const std::vector<int> gb = {1, 2, 3, 4, 5, 6, 7, 8, 16, 32};
  const RowBits grouped{random_groups(n, static_cast<int64_t>(gb.size()), 7), gb};
  const std::vector<int64_t> bounds = {0, 0, 1, 50, 50, 51, 120, 203};
  const float* xp = x.data_ptr<float>();
  auto produce = [&](int64_t k, float* out) {
    std::memcpy(out, xp + bounds[k] * f, 4 * static_cast<size_t>((bounds[k + 1] - bounds[k]) * f));
  };
  for (int threads : {1, 2}) {
    ThreadGuard tg(threads);
    for (const RowBits& rows : {grouped, RowBits::uniform(3), RowBits::uniform(1)}) {
      for (Granularity gran : kAllGranularities) {
        for (Rounding rounding : {Rounding::kNearest, Rounding::kNonzero}) {
          SCOPED_TRACE(std::to_string(rows.num_groups()) + " groups, " +
                       testing::granularity_name(gran) + ", " + to_string(rounding) + ", " +
                       std::to_string(threads) + " threads");
          QuantOptions opt;
          opt.rounding = rounding;
          const PackedTensor want =
              PackedTensor::pack(x, rows, gran, PackLayoutChoice::kBitmap, opt);
          const PackedTensor got =
              PackedTensor::pack_blocks(n, f, bounds, rows, gran, rounding, produce);
          EXPECT_EQ(got.nbytes(), want.nbytes());
          EXPECT_TRUE(at::equal(got.codes_as_int(), want.codes_as_int()));
          EXPECT_TRUE(bitwise_equal(got.decode(), want.decode()));
          for (int64_t r = 0; r < n; ++r) {
            ASSERT_EQ(got.row_scale(r), want.row_scale(r)) << "row " << r;
            ASSERT_EQ(got.row_lo(r), want.row_lo(r)) << "row " << r;
          }
        }
      }
    }
  }
  EXPECT_THROW(PackedTensor::pack_blocks(n, f, {0, 100}, RowBits::uniform(2), Granularity::kRow,
                                         Rounding::kNearest, produce),
               c10::Error);  // bounds must end at N
  EXPECT_THROW(PackedTensor::pack_blocks(n, f, {0, 120, 50, 203}, RowBits::uniform(2),
                                         Granularity::kRow, Rounding::kNearest, produce),
               c10::Error);  // decreasing
  auto nan = [&](int64_t, float* out) { out[0] = std::numeric_limits<float>::quiet_NaN(); };
  EXPECT_THROW(PackedTensor::pack_blocks(1, 1, {0, 1}, RowBits::uniform(2), Granularity::kTensor,
                                         Rounding::kNearest, nan),
               c10::Error);
}

TEST(PackedAttentionSpmm, MatchesSpmmOverDecodedAttention) {
  const CsrGraph g = random_graph(90, 5, 4, /*isolated=*/3).with_self_loops();
  for (int64_t heads : {1, 3, 8}) {
    const int64_t d = 5;
    at::manual_seed(heads);
    const at::Tensor x = at::randn({90, heads * d});
    const at::Tensor alpha = at::rand({g.num_edges(), heads});
    for (int bits : {2, 4, 8, 16}) {
      const PackedTensor a = PackedTensor::pack(alpha, RowBits::uniform(bits), Granularity::kTensor,
                                                PackLayoutChoice::kBitmap);
      const at::Tensor ad = a.decode();
      // Reference: the dense per-head aggregation over the decoded attention.
      at::Tensor want = at::zeros({90, heads * d});
      for (int64_t h = 0; h < heads; ++h) {
        const at::Tensor ah = dense_adjacency(g.with_weights(ad.select(1, h).contiguous()));
        want.narrow(1, h * d, d).copy_(at::matmul(ah, x.narrow(1, h * d, d)));
      }
      const at::Tensor got = packed_attention_spmm(g, x, a);
      EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-5))
          << heads << " heads, " << bits << " bits: " << (got - want).abs().max().item<float>();
    }
  }
  const PackedTensor a = PackedTensor::pack(at::rand({g.num_edges(), 2}), RowBits::uniform(4));
  EXPECT_THROW(packed_attention_spmm(g, at::randn({90, 5}), a), c10::Error);  // 5 % 2 != 0
  EXPECT_THROW(packed_attention_spmm(g, at::randn({89, 4}), a), c10::Error);
}

TEST(PackedAttentionSpmm, RowsOverImplicitSelfLoopsEqualTheMaterializedGraph) {
  // A with some self loops already (kept) and some rows without (a loop is added): reading
  // A + I from A in with_self_loops() order gives the same bits as the materialized copy.
  const CsrGraph a = random_graph(90, 5, 6, /*isolated=*/3, /*weighted=*/false,
                                  /*allow_self_loops=*/true);
  const CsrGraph loops = a.with_self_loops();
  ASSERT_GT(loops.num_edges(), a.num_edges());
  GraphOperators ops(a);
  ASSERT_TRUE(at::equal(ops.self_loops_indptr(), loops.indptr()));
  for (int64_t heads : {1, 4}) {
    at::manual_seed(heads);
    const at::Tensor x = at::randn({90, heads * 3});
    const PackedTensor alpha =
        PackedTensor::pack(at::rand({loops.num_edges(), heads}), RowBits::uniform(4),
                           Granularity::kTensor, PackLayoutChoice::kBitmap);
    const at::Tensor want = packed_attention_spmm(loops, x, alpha);
    at::Tensor got = at::empty_like(want);
    for (auto [r0, r1] : std::vector<std::pair<int64_t, int64_t>>{{0, 31}, {31, 31}, {31, 90}}) {
      packed_attention_spmm_rows(a, ops.self_loops_indptr(), x, alpha, r0, r1,
                                 got.data_ptr<float>() + r0 * x.size(1));
    }
    EXPECT_TRUE(testing::bitwise_equal(got, want)) << heads << " heads";
  }
  const PackedTensor alpha =
      PackedTensor::pack(at::rand({loops.num_edges(), 1}), RowBits::uniform(4));
  std::vector<float> out(90 * 2);
  EXPECT_THROW(packed_attention_spmm_rows(a, loops.indptr().narrow(0, 0, 50), at::randn({90, 2}),
                                          alpha, 0, 10, out.data()),
               c10::Error);  // wrong row pointer length
  EXPECT_THROW(
      packed_attention_spmm_rows(a, a.indptr(), at::randn({90, 2}), alpha, 0, 10, out.data()),
      c10::Error);  // alpha rows do not match A + I's edges
}

TEST(PackedAgnnOps, DotsAndAggregationFromCodesEqualDenseReferences) {
  // AGNN's propagation on packed rows, against dense ATen on the decoded matrix over the
  // materialized A + I: the edge dot products s_i s_j (x^_i . x^_j), and the single-head
  // aggregation sum_j alpha^_ij x^_j. Every layout: mixed-width bitmap rows, an index list
  // (1 bit, sparse), and column scales.
  const int64_t n = 90, f = 19;
  const CsrGraph a = random_graph(n, 5, 7, /*isolated=*/3, /*weighted=*/false,
                                  /*allow_self_loops=*/true);
  const CsrGraph loops = a.with_self_loops();
  GraphOperators ops(a);
  const at::Tensor& lp = ops.self_loops_indptr();
  const at::Tensor dst = at::repeat_interleave(at::arange(n), loops.indptr().diff());
  const at::Tensor src = loops.indices();
  at::manual_seed(5);
  // Wide and sparse enough for the index list to be smaller than the bitmap.
  const at::Tensor sparse = (at::rand({n, 200}) < 0.03).to(at::kFloat) * at::rand({n, 200});
  const at::Tensor dense = at::randn({n, f});
  struct Case {
    const char* name;
    PackedTensor x;
  };
  const std::vector<Case> cases = {
      {"mixed bits", PackedTensor::pack(dense, RowBits{random_groups(n, 5, 8), {2, 4, 8, 16, 32}},
                                        Granularity::kRow, PackLayoutChoice::kBitmap)},
      {"uniform 5 bits, bucket ranges",
       PackedTensor::pack(dense, RowBits{random_groups(n, 3, 9), {5, 5, 5}}, Granularity::kBucket,
                          PackLayoutChoice::kBitmap)},
      {"uniform 3 bits", PackedTensor::pack(dense, RowBits::uniform(3), Granularity::kTensor,
                                            PackLayoutChoice::kBitmap)},
      {"index list",
       PackedTensor::pack(sparse, RowBits::uniform(1), Granularity::kRow, PackLayoutChoice::kAuto)},
      {"column scales",
       PackedTensor::pack(sparse, RowBits::uniform(3), Granularity::kRow, PackLayoutChoice::kAuto,
                          QuantOptions{Rounding::kNearest, column_scales(sparse)})}};
  ASSERT_EQ(cases[3].x.layout(), PackedLayout::kIndexList);
  const PackedTensor alpha = PackedTensor::pack(at::rand({loops.num_edges(), 1}),
                                                RowBits::uniform(4), Granularity::kTensor);
  const at::Tensor alpha_d = alpha.decode().view({-1});
  for (size_t run = 0; run < isas().size() * cases.size(); ++run) {
    const cpu::Isa isa = isas()[run / cases.size()];
    const Case& c = cases[run % cases.size()];
    IsaGuard guard(isa);
    SCOPED_TRACE(std::string(c.name) + (isa == cpu::Isa::kAvx512 ? " avx512" : " avx2"));
    const at::Tensor xd = c.x.decode();
    const int64_t f = xd.size(1);
    const at::Tensor s = at::rand({n}) + 0.5;
    const at::Tensor want_dot =
        ((xd * s.unsqueeze(1)).index_select(0, dst) * (xd * s.unsqueeze(1)).index_select(0, src))
            .sum(1);
    at::Tensor dot = at::empty({loops.num_edges()});
    at::Tensor out = at::empty({n, f});
    const int64_t* lpp = lp.data_ptr<int64_t>();
    for (auto [r0, r1] : std::vector<std::pair<int64_t, int64_t>>{{0, 40}, {40, 40}, {40, n}}) {
      packed_sddmm_dot_rows(a, lp, c.x, s, r0, r1, dot.data_ptr<float>() + lpp[r0]);
      packed_attention_spmm_rows(a, lp, c.x, alpha, r0, r1, out.data_ptr<float>() + r0 * f);
    }
    EXPECT_TRUE(at::allclose(dot, want_dot, 1e-4, 1e-5))
        << (dot - want_dot).abs().max().item<float>();
    testing::expect_spmm_close(out, dense_adjacency(loops.with_weights(alpha_d.contiguous())), xd,
                               c.name);
    // Without row scales: plain dot products.
    packed_sddmm_dot_rows(a, lp, c.x, at::Tensor(), 0, n, dot.data_ptr<float>());
    EXPECT_TRUE(
        at::allclose(dot, (xd.index_select(0, dst) * xd.index_select(0, src)).sum(1), 1e-4, 1e-5));
  }
  std::vector<float> buf(static_cast<size_t>(loops.num_edges() * f));
  const PackedTensor& x = cases[0].x;
  EXPECT_THROW(packed_sddmm_dot_rows(a, lp, x, at::ones({n - 1}), 0, 10, buf.data()),
               c10::Error);  // row scale of the wrong length
  EXPECT_THROW(packed_sddmm_dot_rows(a, lp, x, at::Tensor(), 0, n + 1, buf.data()),
               c10::Error);  // rows outside the graph
  EXPECT_THROW(
      packed_sddmm_dot_rows(a, a.indptr().narrow(0, 0, 50), x, at::Tensor(), 0, 10, buf.data()),
      c10::Error);  // wrong row pointer length
  const PackedTensor two_heads = PackedTensor::pack(at::rand({loops.num_edges(), 2}),
                                                    RowBits::uniform(4), Granularity::kTensor);
  EXPECT_THROW(packed_attention_spmm_rows(a, lp, x, two_heads, 0, 10, buf.data()),
               c10::Error);  // one head only
  const PackedTensor short_x = PackedTensor::pack(at::randn({n - 1, f}), RowBits::uniform(4));
  EXPECT_THROW(packed_attention_spmm_rows(a, lp, short_x, alpha, 0, 10, buf.data()),
               c10::Error);  // x is not [N, F]
}

TEST(PackedSpmm, MixedBitRowsAndGranularities) {
  const CsrGraph g = random_graph(90, 6, 2, 2, true);
  const at::Tensor a = dense_adjacency(g);
  const std::vector<std::vector<int>> configs = {{4, 3, 2}, {8, 16, 1, 32, 5}, {6, 7}};
  for (const auto& gb : configs) {
    for (int64_t f : kPackWidths) {
      for (Granularity gran : kAllGranularities) {
        RowBits rows{random_groups(90, static_cast<int64_t>(gb.size()), f), gb};
        const PackedTensor x = PackedTensor::pack(features(90, f, f + 7), rows, gran);
        expect_spmm_close(packed_spmm(g, x), a, x.decode(),
                          std::to_string(gb.size()) + " groups F " + std::to_string(f));
      }
    }
  }
}

// A rectangular CSR whose rows read the last rows of x (near the end of the code buffer)
// and every row once:
//   out 0 <- x 0..N-1 (all), out 1 <- x N-1, N-2, out 2 <- (none), out 3 <- x N-1 twice.
TEST(PackedSpmm, ReadsLastRowsOfTheBuffer) {
  const int64_t n = 9;
  std::vector<int64_t> indptr{0}, indices;
  for (int64_t j = 0; j < n; ++j) indices.push_back(j);
  indptr.push_back(static_cast<int64_t>(indices.size()));
  indices.insert(indices.end(), {n - 1, n - 2});
  indptr.push_back(static_cast<int64_t>(indices.size()));
  indptr.push_back(static_cast<int64_t>(indices.size()));
  indices.insert(indices.end(), {n - 1, n - 1});
  indptr.push_back(static_cast<int64_t>(indices.size()));
  const CsrGraph g(at::tensor(indptr, at::kLong), at::tensor(indices, at::kLong), {}, n);
  const at::Tensor a = dense_adjacency(g);
  for (int bits : {1, 2, 3, 4, 5, 7, 8, 16, 32, 0}) {
    for (int64_t f : kPackWidths) {
      // bits 0: row groups of every width, the last rows at 1 and 3 bits.
      const RowBits rows = bits > 0 ? RowBits::uniform(bits)
                                    : RowBits{at::tensor({0, 1, 2, 3, 4, 5, 6, 7, 8}, at::kByte),
                                              {4, 2, 16, 32, 5, 6, 8, 1, 3}};
      const PackedTensor x = PackedTensor::pack(features(n, f, 3), rows);
      for (cpu::Isa isa : isas()) {
        IsaGuard guard(isa);
        expect_spmm_close(packed_spmm(g, x), a, x.decode(),
                          "bits " + std::to_string(bits) + " F " + std::to_string(f));
      }
    }
  }
}

TEST(PackedSpmm, TinyGraph) {
  // 0 -> 1, 0 -> 2, 1 -> 2, 2 -> 0, 3 -> 0, 3 -> 2; node 4 isolated.
  const CsrGraph g = testing::tiny_directed_graph();
  const at::Tensor xf =
      at::tensor({0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f, 9.0f}).view({5, 2});
  // 8 bits per tensor over [0, 9]: scale 9 / 255; the values are not all exact, so compare
  // with the decoded matrix: out 0 = x2 + x3, out 1 = x0, out 2 = x0 + x1 + x3, out 3, 4 = 0.
  const PackedTensor x = PackedTensor::pack(xf, RowBits::uniform(8), Granularity::kTensor);
  const at::Tensor h = x.decode();
  const at::Tensor expect =
      at::stack({h[2] + h[3], h[0], h[0] + h[1] + h[3], at::zeros({2}), at::zeros({2})});
  EXPECT_TRUE(at::allclose(packed_spmm(g, x), expect, 1e-6, 1e-6));
}

TEST(PackedSpmm, DeterministicAcrossThreadsAndSimdPaths) {
  const CsrGraph g = random_graph(2000, 12, 5, 4, true);
  for (int64_t f : {17, 64, 257}) {
    RowBits rows{random_groups(2000, 4, 6), {4, 3, 2, 8}};
    const PackedTensor x = PackedTensor::pack(features(2000, f, 9), rows);
    at::Tensor first;
    for (cpu::Isa isa : isas()) {
      for (int threads : {1, 2}) {
        IsaGuard ig(isa);
        ThreadGuard tg(threads);
        const at::Tensor out = packed_spmm(g, x);
        if (!first.defined())
          first = out;
        else
          EXPECT_TRUE(bitwise_equal(out, first)) << "F " << f << " threads " << threads;
      }
    }
  }
}

TEST(PackedSpmm, RejectsMalformedInput) {
  const PackedTensor x = PackedTensor::pack(at::randn({4, 3}), RowBits::uniform(4));
  const at::Tensor ip = at::tensor({0, 2, 3}, at::kLong);
  EXPECT_NO_THROW(packed_spmm(ip, at::tensor({0, 3, 1}, at::kLong), {}, x));
  EXPECT_THROW(packed_spmm(ip, at::tensor({0, 4, 1}, at::kLong), {}, x), c10::Error);
  EXPECT_THROW(packed_spmm(ip, at::tensor({0, -1, 1}, at::kLong), {}, x), c10::Error);
  EXPECT_THROW(
      packed_spmm(at::tensor({1, 2, 3}, at::kLong), at::tensor({0, 3, 1}, at::kLong), {}, x),
      c10::Error);
  EXPECT_THROW(
      packed_spmm(at::tensor({0, 2, 1, 3}, at::kLong), at::tensor({0, 3, 1}, at::kLong), {}, x),
      c10::Error);
  EXPECT_THROW(packed_spmm(ip, at::tensor({0, 3}, at::kLong), {}, x), c10::Error);
  EXPECT_THROW(packed_spmm(ip, at::tensor({0, 3, 1}, at::kLong), at::ones({2}), x), c10::Error);
  EXPECT_THROW(packed_spmm(ip, at::tensor({0, 3, 1}, at::kInt), {}, x), c10::Error);
}

struct OnednnGuard {
  explicit OnednnGuard(bool on) { quant_cpu::set_packed_linear_onednn(on); }
  ~OnednnGuard() { quant_cpu::set_packed_linear_onednn(true); }
};

TEST(PackedLinear, MatchesAtenLinear) {
  at::manual_seed(11);
  for (bool onednn : {true, false}) {
    OnednnGuard guard(onednn);
    SCOPED_TRACE(onednn ? "oneDNN tiles" : "BLAS blocks");
    for (int bits : {1, 2, 3, 4, 8, 16, 32}) {
      for (int64_t f : {1, 9, 33, 257}) {
        for (int64_t n : {1, 70, 1500}) {
          const PackedTensor x = PackedTensor::pack(features(n, f, n + f), RowBits::uniform(bits));
          const at::Tensor xhat = x.decode();
          for (int64_t out : {1, 16, 33}) {
            const at::Tensor w = at::randn({out, f});
            const at::Tensor b = at::randn({out});
            const std::string what = "bits " + std::to_string(bits) + " F " + std::to_string(f) +
                                     " N " + std::to_string(n) + " out " + std::to_string(out);
            const at::Tensor y = packed_linear(x, w, b);
            const at::Tensor ref = at::linear(xhat, w, b);
            const double atol = 1e-5 * at::mm(xhat.abs(), w.abs().t()).max().item<double>();
            EXPECT_TRUE(at::allclose(y, ref, 1e-4, atol)) << what;
            EXPECT_TRUE(at::allclose(packed_linear(x, w), at::linear(xhat, w), 1e-4, atol)) << what;
          }
        }
      }
    }
  }
}

TEST(PackedLinear, MixedBitsAndThreads) {
  const int64_t n = 3000, f = 48;
  RowBits rows{random_groups(n, 3, 1), {4, 3, 2}};
  const PackedTensor x = PackedTensor::pack(features(n, f, 2), rows, Granularity::kBucket);
  at::manual_seed(3);
  const at::Tensor w = at::randn({20, f}, at::requires_grad());
  const at::Tensor b = at::randn({20});
  const at::Tensor ref = at::linear(x.decode(), w.detach(), b);
  for (bool onednn : {true, false}) {
    OnednnGuard og(onednn);
    at::Tensor y[2];
    for (int threads : {1, 2}) {
      ThreadGuard guard(threads);
      y[threads - 1] = packed_linear(x, w, b);
    }
    EXPECT_TRUE(at::allclose(y[0], ref, 1e-4, 1e-4)) << onednn;
    EXPECT_TRUE(at::allclose(y[1], y[0], 1e-5, 1e-5)) << onednn;
    EXPECT_FALSE(y[0].requires_grad());
  }
  EXPECT_THROW(packed_linear(x, at::randn({20, f + 1})), c10::Error);
  EXPECT_THROW(packed_linear(x, w, at::randn({21})), c10::Error);
}

TEST(FakeQuant, ForwardEqualsPackDecodeBitwise) {
  const std::vector<std::vector<int>> configs = {{1}, {2}, {3},  {4},  {5},       {6},
                                                 {7}, {8}, {16}, {32}, {4, 3, 2}, {8, 16, 1, 32}};
  for (const auto& gb : configs) {
    for (int64_t f : kPackWidths) {
      for (Granularity gran : kAllGranularities) {
        const int64_t n = 29;
        RowBits rows{
            gb.size() > 1 ? random_groups(n, static_cast<int64_t>(gb.size()), f) : at::Tensor(),
            gb};
        const at::Tensor x = features(n, f, f * 3 + gb[0]);
        for (cpu::Isa isa : isas()) {
          IsaGuard guard(isa);
          EXPECT_TRUE(bitwise_equal(fake_quantize(x, rows, gran),
                                    PackedTensor::pack(x, rows, gran).decode()))
              << gb.size() << " groups, bits[0] " << gb[0] << " F " << f;
        }
      }
    }
  }
}

TEST(FakeQuant, StraightThroughGradient) {
  for (int bits : {1, 4, 8, 16}) {
    for (Granularity gran : kAllGranularities) {
      const at::Tensor x = features(40, 33, bits).requires_grad_();
      const at::Tensor y = fake_quantize(x, RowBits::uniform(bits), gran);
      ASSERT_TRUE(y.requires_grad());
      at::manual_seed(bits);
      const at::Tensor gy = at::randn({40, 33});
      const auto gx = torch::autograd::grad({y}, {x}, {gy});
      EXPECT_TRUE(bitwise_equal(gx[0], gy)) << bits;
    }
  }
  // Through a loss: d/dx sum(x^ * c) = c.
  const at::Tensor x = features(10, 7, 1).requires_grad_();
  const at::Tensor c = at::randn({10, 7});
  (fake_quantize(x, RowBits{random_groups(10, 2, 1), {2, 5}}, Granularity::kBucket) * c)
      .sum()
      .backward();
  EXPECT_TRUE(at::allclose(x.grad(), c));
}

TEST(FakeQuant, StridedInputAndThreads) {
  const at::Tensor base = features(3000, 40, 5);
  const at::Tensor xt = base.t();  // [40, 3000] strided
  at::Tensor y[2];
  for (int threads : {1, 2}) {
    ThreadGuard guard(threads);
    y[threads - 1] = fake_quantize(xt, RowBits::uniform(3), Granularity::kTensor);
  }
  EXPECT_TRUE(bitwise_equal(y[0], y[1]));
  EXPECT_TRUE(bitwise_equal(
      y[0],
      PackedTensor::pack(xt.contiguous(), RowBits::uniform(3), Granularity::kTensor).decode()));
  EXPECT_THROW(fake_quantize(at::randn({3}), RowBits::uniform(3)), c10::Error);
}

}  // namespace
}  // namespace qgnn
