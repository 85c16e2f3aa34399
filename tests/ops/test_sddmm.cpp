#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <string>
#include <vector>

#include "ops/cpu/kernels.h"
#include "qgnn/ops/sddmm.h"
#include "testing/graphs.h"
#include "testing/guards.h"

namespace qgnn {
namespace {

using testing::IsaGuard;
using testing::isas;
using testing::ThreadGuard;

using testing::random_graph;
using testing::tiny_directed_graph;

void expect_close(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_TRUE(at::allclose(a, b, 1e-4, 1e-5))
      << what << ": max abs diff " << (a - b).abs().max().item<float>();
}

// Dense reference: per head, M_h = dst_h src_h^T ([R, C]), read at the edges.
at::Tensor dot_reference(const CsrGraph& g, const at::Tensor& dst, const at::Tensor& src) {
  const at::Tensor d3 = dst.dim() == 3 ? dst : dst.unsqueeze(1);
  const at::Tensor s3 = src.dim() == 3 ? src : src.unsqueeze(1);
  std::vector<at::Tensor> cols;
  for (int64_t h = 0; h < d3.size(1); ++h) {
    const at::Tensor m = at::matmul(d3.select(1, h), s3.select(1, h).t());
    cols.push_back(m.index({g.row_ids(), g.indices()}));
  }
  return at::stack(cols, 1);
}

TEST(SddmmDot, MatchesDenseForwardAndGradients) {
  const std::vector<int64_t> widths = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 257};
  for (bool rect : {false, true}) {
    CsrGraph g = random_graph(60, 5, 21, 3, false, true);
    if (rect) {
      const int64_t e = g.indptr()[40].item<int64_t>();
      g = CsrGraph(g.indptr().slice(0, 0, 41), g.indices().slice(0, 0, e), {}, 60);
    }
    for (cpu::Isa isa : isas()) {
      IsaGuard guard(isa);
      for (int64_t d : widths) {
        for (int64_t heads : {1, 3}) {
          SCOPED_TRACE(std::string(cpu::isa_name(isa)) + " D=" + std::to_string(d) +
                       " H=" + std::to_string(heads) + " rect=" + std::to_string(rect));
          at::manual_seed(d * 10 + heads);
          const int64_t r = g.num_rows(), c = g.num_cols();
          at::Tensor dst = heads > 1 ? at::randn({r, heads, d}) : at::randn({r, d});
          at::Tensor src = heads > 1 ? at::randn({c, heads, d}) : at::randn({c, d});
          dst.requires_grad_(true);
          src.requires_grad_(true);
          const at::Tensor out = sddmm_dot(g, dst, src);
          const at::Tensor ref = dot_reference(g, dst, src);
          expect_close(out, ref, "forward");
          const at::Tensor dout = at::randn(out.sizes());
          const auto grads = torch::autograd::grad({out}, {dst, src}, {dout});
          const auto grads_ref = torch::autograd::grad({ref}, {dst, src}, {dout});
          expect_close(grads[0], grads_ref[0], "d_dst");
          expect_close(grads[1], grads_ref[1], "d_src");
        }
      }
    }
  }
}

TEST(SddmmDot, EightHeadPathMatchesDense) {
  // heads % 8 == 0 and D % 8 == 0 take the 8-heads-at-once reduction.
  CsrGraph g = random_graph(50, 5, 31, 2);
  for (cpu::Isa isa : isas()) {
    IsaGuard guard(isa);
    for (int64_t heads : {8, 16}) {
      for (int64_t d : {8, 16, 24}) {
        SCOPED_TRACE("H=" + std::to_string(heads) + " D=" + std::to_string(d));
        const at::Tensor dst = at::randn({50, heads, d}), src = at::randn({50, heads, d});
        expect_close(sddmm_dot(g, dst, src), dot_reference(g, dst, src), "forward");
      }
    }
  }
}

TEST(SddmmAdd, MatchesReferenceWithGradients) {
  CsrGraph g = random_graph(80, 6, 4, 3);
  for (int64_t heads : {1, 3, 8}) {
    at::Tensor dst = at::randn({80, heads}).requires_grad_();
    at::Tensor src = at::randn({80, heads}).requires_grad_();
    const at::Tensor out = sddmm_add(g, dst, src);
    // Reference: dense broadcast dst[i] + src[j], read at the edges.
    std::vector<at::Tensor> cols;
    for (int64_t h = 0; h < heads; ++h) {
      const at::Tensor m = dst.select(1, h).unsqueeze(1) + src.select(1, h).unsqueeze(0);
      cols.push_back(m.index({g.row_ids(), g.indices()}));
    }
    const at::Tensor ref = at::stack(cols, 1);
    EXPECT_TRUE(at::equal(out, ref));
    const at::Tensor dout = at::randn(out.sizes());
    const auto grads = torch::autograd::grad({out}, {dst, src}, {dout});
    const auto grads_ref = torch::autograd::grad({ref}, {dst, src}, {dout});
    expect_close(grads[0], grads_ref[0], "d_dst");
    expect_close(grads[1], grads_ref[1], "d_src");
  }
}

TEST(SddmmAdd, TinyGradientsAreInAndOutDegreeSums) {
  // Edges (2->0, 3->0, 0->1, 0->2, 1->2, 3->2); with dout = 1 the gradient of dst is the
  // in-degree [2, 1, 3, 0, 0] and that of src the out-degree [2, 1, 1, 2, 0].
  CsrGraph g = tiny_directed_graph();
  at::Tensor dst = at::zeros({5, 1}).requires_grad_();
  at::Tensor src = at::zeros({5, 1}).requires_grad_();
  const at::Tensor out = sddmm_add(g, dst, src);
  const auto grads = torch::autograd::grad({out}, {dst, src}, {at::ones({6, 1})});
  EXPECT_TRUE(at::equal(grads[0].view({5}), at::tensor(std::vector<float>{2, 1, 3, 0, 0})));
  EXPECT_TRUE(at::equal(grads[1].view({5}), at::tensor(std::vector<float>{2, 1, 1, 2, 0})));
}

TEST(SddmmErrors, ShapesAreChecked) {
  CsrGraph g = tiny_directed_graph();
  EXPECT_THROW(sddmm_dot(g, at::ones({4, 3}), at::ones({5, 3})), c10::Error);
  EXPECT_THROW(sddmm_dot(g, at::ones({5, 3}), at::ones({5, 4})), c10::Error);
  EXPECT_THROW(sddmm_dot(g, at::ones({5, 2, 3}), at::ones({5, 3, 3})), c10::Error);
  EXPECT_THROW(sddmm_add(g, at::ones({5, 2}), at::ones({5, 3})), c10::Error);
  EXPECT_EQ(sddmm_dot(g, at::ones({5, 4}), at::ones({5, 4})).sizes(), (at::IntArrayRef{6, 1}));
}

TEST(SddmmDeterminism, BitwiseIdenticalWithOneAndTwoThreads) {
  CsrGraph g = random_graph(5000, 10, 6, 5);
  const at::Tensor dst = at::randn({5000, 4, 8}), src = at::randn({5000, 4, 8});
  at::Tensor out[2];
  for (int t = 0; t < 2; ++t) {
    const int saved = at::get_num_threads();
    at::set_num_threads(t + 1);
    out[t] = sddmm_dot(g, dst, src);
    at::set_num_threads(saved);
  }
  EXPECT_TRUE(at::equal(out[0], out[1]));
}

}  // namespace
}  // namespace qgnn
