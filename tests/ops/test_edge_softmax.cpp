#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops/cpu/kernels.h"
#include "qgnn/ops/edge_softmax.h"
#include "testing/graphs.h"
#include "testing/guards.h"

namespace qgnn {
namespace {

using testing::IsaGuard;
using testing::isas;
using testing::ThreadGuard;

using testing::random_graph;
using testing::tiny_directed_graph;

// Dense reference: per head, an [R, C] score matrix filled with -inf off the edges,
// softmax over each row, read back at the edges. (No duplicate edges in random_graph.)
at::Tensor softmax_reference(const CsrGraph& g, const at::Tensor& s) {
  const at::Tensor s2 = s.dim() == 2 ? s : s.unsqueeze(1);
  std::vector<at::Tensor> cols;
  for (int64_t h = 0; h < s2.size(1); ++h) {
    at::Tensor m = at::full({g.num_rows(), g.num_cols()}, -std::numeric_limits<float>::infinity());
    m = m.index_put({g.row_ids(), g.indices()}, s2.select(1, h));
    cols.push_back(at::softmax(m, 1).index({g.row_ids(), g.indices()}));
  }
  const at::Tensor out = at::stack(cols, 1);
  return s.dim() == 2 ? out : out.squeeze(1);
}

TEST(EdgeSoftmax, MatchesDenseMaskedSoftmaxWithGradients) {
  CsrGraph g = random_graph(70, 6, 13, 3, false, true);
  for (cpu::Isa isa : isas()) {
    IsaGuard guard(isa);
    for (int64_t heads : {0, 1, 3, 8}) {  // 0: 1-D scores [E]
      SCOPED_TRACE(std::string(cpu::isa_name(isa)) + " H=" + std::to_string(heads));
      at::manual_seed(heads);
      at::Tensor s =
          heads == 0 ? at::randn({g.num_edges()}) * 3 : at::randn({g.num_edges(), heads}) * 3;
      s.requires_grad_(true);
      const at::Tensor alpha = edge_softmax(g, s);
      const at::Tensor ref = softmax_reference(g, s);
      ASSERT_EQ(alpha.sizes(), s.sizes());
      EXPECT_TRUE(at::allclose(alpha, ref, 1e-5, 1e-6)) << (alpha - ref).abs().max().item<float>();
      const at::Tensor da = at::randn(alpha.sizes());
      const auto gr = torch::autograd::grad({alpha}, {s}, {da});
      const auto gr_ref = torch::autograd::grad({ref}, {s}, {da});
      EXPECT_TRUE(at::allclose(gr[0], gr_ref[0], 1e-4, 1e-5))
          << (gr[0] - gr_ref[0]).abs().max().item<float>();
    }
  }
}

TEST(EdgeSoftmax, StableForLargeScoresAndRowsSumToOne) {
  CsrGraph g = random_graph(50, 5, 2, 2);
  const at::Tensor s = at::randn({g.num_edges(), 2}) * 1000;
  const at::Tensor alpha = edge_softmax(g, s);
  EXPECT_TRUE(at::isfinite(alpha).all().item<bool>());
  at::Tensor sums = at::zeros({50, 2}).index_add(0, g.row_ids(), alpha);
  const at::Tensor has_edges = (g.in_degree() > 0).unsqueeze(1).expand({50, 2});
  EXPECT_TRUE(at::allclose(sums.masked_select(has_edges), at::ones({1}), 1e-5, 1e-5));
}

TEST(EdgeSoftmax, TinyByHand) {
  // Row 2 has in-edges from 0, 1, 3 with scores 0, ln 2, ln 5 -> 1/8, 2/8, 5/8.
  CsrGraph g = tiny_directed_graph();
  const at::Tensor s = at::tensor(std::vector<float>{1, 1, 7, 0, std::log(2.0f), std::log(5.0f)});
  const at::Tensor alpha = edge_softmax(g, s);
  EXPECT_TRUE(at::allclose(alpha, at::tensor(std::vector<float>{0.5, 0.5, 1, 0.125, 0.25, 0.625}),
                           1e-6, 1e-6));
}

TEST(EdgeSoftmaxExp, VectorExpIsAccurate) {
  const at::Tensor x = at::linspace(-100.0, 88.0, 100003);
  for (cpu::Isa isa : isas()) {
    IsaGuard guard(isa);
    at::Tensor y = x.clone();
    cpu::exp_inplace(y.data_ptr<float>(), y.numel());
    const at::Tensor ref = at::exp(x.to(at::kDouble));
    const at::Tensor rel = ((y.to(at::kDouble) - ref).abs() / ref).masked_select(x > -87.3);
    EXPECT_LT(rel.max().item<double>(), 3e-7) << cpu::isa_name(isa);
    EXPECT_TRUE((y.masked_select(x < -87.4) == 0).all().item<bool>());
  }
}

TEST(EdgeSoftmaxErrors, ShapesAreChecked) {
  CsrGraph g = tiny_directed_graph();
  EXPECT_THROW(edge_softmax(g, at::ones({5})), c10::Error);
  EXPECT_THROW(edge_softmax(g, at::ones({6, 2, 2})), c10::Error);
  EXPECT_THROW(edge_softmax(g, at::ones({6}, at::kDouble)), c10::Error);
}

}  // namespace
}  // namespace qgnn
