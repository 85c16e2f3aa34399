#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <string>
#include <vector>

#include "ops/cpu/kernels.h"
#include "qgnn/ops/dropout.h"
#include "qgnn/ops/spmm.h"
#include "qgnn/quant/node_features.h"
#include "testing/graphs.h"
#include "testing/guards.h"

namespace qgnn {
namespace {

using testing::IsaGuard;
using testing::isas;
using testing::ThreadGuard;

using testing::dense_adjacency;
using testing::dense_from_edge_values;
using testing::random_graph;
using testing::tiny_directed_graph;

const std::vector<int64_t> kWidths = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 257};

void expect_close(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_TRUE(at::allclose(a, b, 1e-4, 1e-5))
      << what << ": max abs diff " << (a - b).abs().max().item<float>();
}

// A rectangular [R, C] CSR (sparse features): random rows of a [C, C] graph.
CsrGraph rectangular(int64_t rows, int64_t cols, uint64_t seed, bool weighted) {
  CsrGraph g = random_graph(cols, 5, seed, 2, weighted);
  const int64_t e = g.indptr()[rows].item<int64_t>();
  return CsrGraph(g.indptr().slice(0, 0, rows + 1), g.indices().slice(0, 0, e),
                  weighted ? g.weights().slice(0, 0, e) : at::Tensor(), cols);
}

enum class WeightKind { kNone, kGraph, kExplicit };

// Checks spmm and its gradients against dense ATen matmuls, for heads H (x [C, H, D] with
// [E, H] weights when H > 1, else x [C, D]).
void check_against_dense(const CsrGraph& g0, int64_t heads, int64_t d, WeightKind kind,
                         Reduce reduce) {
  const std::string what = "H=" + std::to_string(heads) + " D=" + std::to_string(d) +
                           " kind=" + std::to_string(static_cast<int>(kind)) +
                           " mean=" + std::to_string(reduce == Reduce::kMean);
  SCOPED_TRACE(what);
  at::manual_seed(heads * 1000 + d);
  const int64_t c = g0.num_cols(), e = g0.num_edges();
  CsrGraph g = kind == WeightKind::kGraph ? g0.with_weights(at::rand({e}) + 0.5) : g0;
  at::Tensor x = heads > 1 ? at::randn({c, heads, d}) : at::randn({c, d});
  x.requires_grad_(true);
  at::Tensor w;
  if (kind == WeightKind::kExplicit) {
    w = (heads > 1 ? at::rand({e, heads}) : at::rand({e})) + 0.5;
    w.requires_grad_(true);
  }
  const at::Tensor y = spmm(g, x, reduce, w);
  const at::Tensor dy = at::randn(y.sizes());

  // Reference: per head, a dense [R, C] matrix built differentiably from the weights.
  const at::Tensor inv_deg = 1.0 / g.in_degree().clamp_min(1).to(at::kFloat).unsqueeze(1);
  std::vector<at::Tensor> outs;
  for (int64_t h = 0; h < heads; ++h) {
    at::Tensor wh = kind == WeightKind::kExplicit ? (heads > 1 ? w.select(1, h) : w)
                                                  : (g.has_weights() ? g.weights() : at::ones({e}));
    at::Tensor a = dense_from_edge_values(g, wh);
    if (reduce == Reduce::kMean) a = a * inv_deg;
    outs.push_back(at::matmul(a, heads > 1 ? x.select(1, h) : x));
  }
  const at::Tensor y_ref = heads > 1 ? at::stack(outs, 1) : outs[0];
  expect_close(y, y_ref, "forward");

  std::vector<at::Tensor> inputs{x};
  if (w.defined()) inputs.push_back(w);
  const auto grads = torch::autograd::grad({y}, inputs, {dy});
  const auto grads_ref = torch::autograd::grad({y_ref}, inputs, {dy});
  expect_close(grads[0], grads_ref[0], "dX");
  if (w.defined()) expect_close(grads[1], grads_ref[1], "dW");
}

TEST(SpmmDense, MatchesDenseForwardAndGradients) {
  CsrGraph g = random_graph(70, 5, 42, 3, /*weighted=*/false, /*allow_self_loops=*/true);
  for (cpu::Isa isa : isas()) {
    IsaGuard guard(isa);
    SCOPED_TRACE(cpu::isa_name(isa));
    for (int64_t d : kWidths) {
      for (int64_t heads : {1, 3}) {
        for (auto kind : {WeightKind::kNone, WeightKind::kGraph, WeightKind::kExplicit}) {
          for (auto reduce : {Reduce::kSum, Reduce::kMean}) {
            check_against_dense(g, heads, d, kind, reduce);
          }
        }
      }
    }
  }
}

TEST(SpmmDense, ManyHeads) {
  // GAT-like shapes: the per-lane head-weight path (H <= W, H * D <= 8 W) and beyond.
  CsrGraph g = random_graph(60, 5, 17, 3);
  for (cpu::Isa isa : isas()) {
    IsaGuard guard(isa);
    SCOPED_TRACE(cpu::isa_name(isa));
    for (int64_t heads : {2, 8, 16}) {
      for (int64_t d : {1, 7, 8, 9, 16, 17}) {
        check_against_dense(g, heads, d, WeightKind::kExplicit, Reduce::kSum);
      }
    }
  }
}

TEST(SpmmDense, RectangularSparseFeatures) {
  CsrGraph g = rectangular(45, 80, 9, /*weighted=*/true);
  ASSERT_EQ(g.num_rows(), 45);
  ASSERT_EQ(g.num_cols(), 80);
  for (cpu::Isa isa : isas()) {
    IsaGuard guard(isa);
    SCOPED_TRACE(cpu::isa_name(isa));
    for (int64_t d : {1, 9, 16, 33}) {
      for (auto kind : {WeightKind::kGraph, WeightKind::kExplicit}) {
        check_against_dense(g, 1, d, kind, Reduce::kSum);
        check_against_dense(g, 3, d, kind, Reduce::kMean);
      }
    }
  }
}

TEST(SpmmDense, SharedEdgeWeightOverHeads) {
  // x [C, H, D] with one weight per edge: the same weight for every head.
  CsrGraph g = random_graph(50, 4, 3, 2);
  at::Tensor x = at::randn({50, 4, 5}).requires_grad_();
  at::Tensor w = (at::rand({g.num_edges()}) + 0.5).requires_grad_(true);
  const at::Tensor y = spmm(g, x, Reduce::kSum, w);
  const at::Tensor y_ref =
      at::matmul(dense_from_edge_values(g, w), x.view({50, 20})).view({50, 4, 5});
  expect_close(y, y_ref, "forward");
  const at::Tensor dy = at::randn(y.sizes());
  const auto grads = torch::autograd::grad({y}, {x, w}, {dy});
  const auto grads_ref = torch::autograd::grad({y_ref}, {x, w}, {dy});
  expect_close(grads[0], grads_ref[0], "dX");
  expect_close(grads[1], grads_ref[1], "dW");
}

TEST(SpmmTiny, DirectedBackwardByHand) {
  // Edges j -> i: 0 -> 1, 0 -> 2, 1 -> 2, 2 -> 0, 3 -> 0, 3 -> 2 (4 isolated).
  // y[0] = x2 + x3, y[1] = x0, y[2] = x0 + x1 + x3, y[3] = y[4] = 0.
  // dX[j] = sum of dY over the targets of j's out-edges (A^T dY, not A dY):
  //   dX = [dY1 + dY2, dY2, dY0, dY0 + dY2, 0].
  CsrGraph g = tiny_directed_graph();
  at::Tensor x = at::tensor(std::vector<float>{1, 2, 3, 4, 5}).view({5, 1}).requires_grad_();
  const at::Tensor w = at::ones({6}).requires_grad_();
  const at::Tensor y = spmm(g, x, Reduce::kSum, w);
  EXPECT_TRUE(at::equal(y.view({5}), at::tensor(std::vector<float>{7, 1, 7, 0, 0})));
  const at::Tensor dy = at::tensor(std::vector<float>{1, 10, 100, 1000, 10000}).view({5, 1});
  const auto grads = torch::autograd::grad({y}, {x, w}, {dy});
  EXPECT_TRUE(at::equal(grads[0].view({5}), at::tensor(std::vector<float>{110, 100, 1, 101, 0})));
  // dW_e = dY[i] * x[j] for the edges (2->0, 3->0, 0->1, 0->2, 1->2, 3->2).
  EXPECT_TRUE(at::equal(grads[1], at::tensor(std::vector<float>{3, 4, 10, 100, 200, 400})));
  // Mean: rows divided by in-degree [2, 1, 3, -, -].
  const at::Tensor ym = spmm(g, x.detach(), Reduce::kMean);
  EXPECT_TRUE(at::allclose(ym.view({5}), at::tensor(std::vector<float>{3.5, 1, 7.0 / 3, 0, 0})));
}

TEST(SpmmTiny, GcnPropagationByHand) {
  // gcn_normalized() of the tiny graph times x = 1: row i sums 1 / sqrt(d_i d_j).
  const CsrGraph g = tiny_directed_graph();
  const CsrGraph& n = g.gcn_normalized();  // valid while g lives
  const at::Tensor y = spmm(n, at::ones({5, 1})).view({5});
  const double s3 = std::sqrt(3.0), s2 = std::sqrt(2.0);
  const std::vector<float> expected = {
      static_cast<float>(1 / (s3 * 2) + 1 / s3 + 1 / 3.0), static_cast<float>(1 / (s3 * s2) + 0.5),
      static_cast<float>(1 / (2 * s3) + 1 / (2 * s2) + 0.5 + 0.25), 1.0f, 1.0f};
  EXPECT_TRUE(at::allclose(y, at::tensor(expected), 1e-6, 1e-6));
}

TEST(SpmmDeterminism, BitwiseIdenticalWithOneAndTwoThreads) {
  CsrGraph g = random_graph(6000, 12, 5, 10, /*weighted=*/true);
  for (cpu::Isa isa : isas()) {
    IsaGuard guard(isa);
    for (int64_t d : {16, 33, 64}) {
      at::manual_seed(d);
      const at::Tensor x0 = at::randn({6000, d});
      const at::Tensor w0 = at::rand({g.num_edges()});
      const at::Tensor dy = at::randn({6000, d});
      at::Tensor out[2], dx[2], dw[2];
      for (int t = 0; t < 2; ++t) {
        ThreadGuard threads(t + 1);
        const at::Tensor x = x0.clone().requires_grad_();
        const at::Tensor w = w0.clone().requires_grad_();
        out[t] = spmm(g, x, Reduce::kSum, w);
        const auto grads = torch::autograd::grad({out[t]}, {x, w}, {dy});
        dx[t] = grads[0];
        dw[t] = grads[1];
      }
      EXPECT_TRUE(at::equal(out[0], out[1])) << "D=" << d;
      EXPECT_TRUE(at::equal(dx[0], dx[1])) << "D=" << d;
      EXPECT_TRUE(at::equal(dw[0], dw[1])) << "D=" << d;
    }
  }
}

TEST(SpmmIsa, Avx2AndAvx512Agree) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  CsrGraph g = random_graph(500, 8, 2, 4, true);
  for (int64_t d : kWidths) {
    const at::Tensor x = at::randn({500, d});
    at::Tensor y[2];
    for (int i = 0; i < 2; ++i) {
      IsaGuard guard(i == 0 ? cpu::Isa::kAvx2 : cpu::Isa::kAvx512);
      y[i] = spmm(g, x);
    }
    // The two paths sum the 8 or so edges of a row in different orders (accumulator
    // blocking differs with the vector width): equal up to float rounding of the sum.
    EXPECT_TRUE(at::allclose(y[0], y[1], 1e-5, 1e-5)) << "D=" << d;
  }
}

TEST(SpmmKernel, RawKernelMatchesDense) {
  CsrGraph g = random_graph(40, 4, 8, 2);
  const at::Tensor x = at::randn({40, 2 * 9});
  const at::Tensor w = at::rand({g.num_edges(), 2});
  at::Tensor out = at::full({40, 18}, 123.0f);  // overwritten, not accumulated
  cpu::spmm_sum_kernel(g, x, w, 2, out);
  const at::Tensor xr = x.view({40, 2, 9});
  const at::Tensor ref =
      at::stack({at::matmul(dense_from_edge_values(g, w.select(1, 0)), xr.select(1, 0)),
                 at::matmul(dense_from_edge_values(g, w.select(1, 1)), xr.select(1, 1))},
                1)
          .view({40, 18});
  expect_close(out, ref, "raw kernel");
}

TEST(SpmmErrors, MessagesNameTheArgument) {
  CsrGraph g = tiny_directed_graph();
  try {
    spmm(g, at::ones({4, 3}));
    ADD_FAILURE();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("x.size(0)"), std::string::npos);
  }
  EXPECT_THROW(spmm(g, at::ones({5, 3}, at::kDouble)), c10::Error);
  EXPECT_THROW(spmm(g, at::ones({5, 3}), Reduce::kSum, at::ones({5})), c10::Error);
  EXPECT_THROW(spmm(g, at::ones({5, 3}), Reduce::kSum, at::ones({6, 2})), c10::Error);
  EXPECT_THROW(spmm(CsrGraph(), at::ones({5, 3})), c10::Error);
}

TEST(SpmmNoGrad, InferenceSkipsAutograd) {
  CsrGraph g = random_graph(30, 3, 4, 2);
  const at::Tensor x = at::randn({30, 8}).requires_grad_();
  at::NoGradGuard no_grad;
  const at::Tensor y = spmm(g, x);
  EXPECT_FALSE(y.requires_grad());
}

// ---- NodeFeatures --------------------------------------------------------------------

at::Tensor sparse_bag_of_words(int64_t n, int64_t f, double density, uint64_t seed) {
  at::manual_seed(seed);
  return at::rand({n, f}) * (at::rand({n, f}) < density).to(at::kFloat);
}

TEST(FeaturesStorage, FromDenseChoosesByDensity) {
  const at::Tensor x = sparse_bag_of_words(30, 50, 0.1, 1);
  NodeFeatures s = NodeFeatures::from_dense(x, 0.4);
  ASSERT_TRUE(s.is_sparse());
  EXPECT_EQ(s.num_rows(), 30);
  EXPECT_EQ(s.num_cols(), 50);
  EXPECT_EQ(s.nnz(), (x != 0).sum().item<int64_t>());
  EXPECT_TRUE(at::equal(s.to_dense(), x));
  EXPECT_FALSE(NodeFeatures::from_dense(x, 0.01).is_sparse());
  EXPECT_FALSE(NodeFeatures::from_dense(at::rand({10, 10}) + 1, 0.4).is_sparse());
}

TEST(FeaturesLinear, SparseMatchesDenseWithGradients) {
  const at::Tensor x = sparse_bag_of_words(40, 70, 0.08, 2);
  NodeFeatures s = NodeFeatures::from_dense(x);
  NodeFeatures d(x);
  ASSERT_TRUE(s.is_sparse());
  for (int64_t out : {1, 7, 16, 33}) {
    const at::Tensor wt = at::randn({out, 70}).requires_grad_();
    const at::Tensor b = at::randn({out}).requires_grad_();
    const at::Tensor ys = s.linear(wt, b), yd = d.linear(wt, b);
    expect_close(ys, yd, "forward");
    expect_close(ys, at::matmul(x, wt.t()) + b, "forward vs matmul");
    const at::Tensor dy = at::randn(ys.sizes());
    const auto gs = torch::autograd::grad({ys}, {wt, b}, {dy});
    const auto gd = torch::autograd::grad({yd}, {wt, b}, {dy});
    expect_close(gs[0], gd[0], "dW");
    expect_close(gs[1], gd[1], "db");
    const at::Tensor yn = s.linear(wt.detach());
    expect_close(yn, at::matmul(x, wt.detach().t()), "no bias");
  }
}

TEST(FeaturesDropout, SparseDropsStoredValuesOnly) {
  const at::Tensor x = sparse_bag_of_words(50, 60, 0.1, 3) + 0;
  NodeFeatures s = NodeFeatures::from_dense(x);
  ASSERT_TRUE(s.is_sparse());
  at::manual_seed(5);
  NodeFeatures dropped = s.dropout(0.5, true);
  ASSERT_TRUE(dropped.is_sparse());
  EXPECT_EQ(dropped.sparse().indices().data_ptr(), s.sparse().indices().data_ptr());
  const at::Tensor v = dropped.sparse().weights(), v0 = s.sparse().weights();
  const at::Tensor kept = v != 0;
  EXPECT_TRUE(at::allclose(v.masked_select(kept), v0.masked_select(kept) * 2.0));
  const double frac = kept.to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(frac, 0.5, 0.08);
  EXPECT_EQ(s.dropout(0.5, false).sparse().weights().data_ptr(), v0.data_ptr());
  // Dense features go through the dense dropout.
  NodeFeatures d(x);
  EXPECT_FALSE(d.dropout(0.5, true).is_sparse());
}

TEST(FeaturesIndexRows, SparseAndDenseAgree) {
  const at::Tensor x = sparse_bag_of_words(30, 40, 0.15, 4);
  const at::Tensor idx = at::tensor(std::vector<int64_t>{5, 0, 29, 5, 12});
  NodeFeatures s = NodeFeatures::from_dense(x).index_rows(idx);
  NodeFeatures d = NodeFeatures(x).index_rows(idx);
  ASSERT_TRUE(s.is_sparse());
  EXPECT_TRUE(at::equal(s.to_dense(), x.index_select(0, idx)));
  EXPECT_TRUE(at::equal(d.dense(), x.index_select(0, idx)));
  EXPECT_THROW(NodeFeatures(x).index_rows(at::tensor(std::vector<int64_t>{30})), c10::Error);
}

}  // namespace
}  // namespace qgnn
