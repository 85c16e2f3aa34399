#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "qgnn/graph/csr_graph.h"
#include "testing/graphs.h"

namespace qgnn {
namespace {

using testing::dense_adjacency;
using testing::random_graph;
using testing::tiny_directed_graph;

at::Tensor i64(std::vector<int64_t> v) { return at::tensor(v, at::kLong); }
at::Tensor f32(std::vector<float> v) { return at::tensor(v, at::kFloat); }

// Runs fn, expects a c10::Error whose message contains every one of `parts`.
template <class Fn>
void expect_error(Fn fn, std::vector<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg;
  }
}

TEST(CsrGraphValidation, IndptrMustStartAtZero) {
  expect_error([] { CsrGraph(i64({1, 2}), i64({0, 0})); }, {"indptr[0]", "got 1"});
}

TEST(CsrGraphValidation, IndptrMustBeNonDecreasing) {
  expect_error(
      [] {
        CsrGraph(i64({0, 3, 2, 4}), i64({0, 1, 2, 0}));
      },
      {"indptr", "non-decreasing", "indptr[2] = 2"});
}

TEST(CsrGraphValidation, IndptrMustEndAtNumEdges) {
  expect_error([] { CsrGraph(i64({0, 1, 3}), i64({0, 1})); }, {"indptr[-1]", "= 3", "(2)"});
}

TEST(CsrGraphValidation, IndicesMustBeInRange) {
  expect_error([] { CsrGraph(i64({0, 2, 4}), i64({0, 1, 1, 7})); }, {"indices[3] = 7", "[0, 2)"});
  expect_error([] { CsrGraph(i64({0, 1, 2}), i64({-1, 0})); }, {"indices[0] = -1"});
  // Rectangular: the bound is num_cols.
  expect_error([] { CsrGraph(i64({0, 1}), i64({5}), {}, 5); }, {"indices[0] = 5", "[0, 5)"});
}

TEST(CsrGraphValidation, ShapesAndDtypes) {
  expect_error([] { CsrGraph(i64({0, 1}).view({1, 2}), i64({0})); }, {"indptr", "1-D"});
  expect_error([] { CsrGraph(i64({0, 1}), f32({0})); }, {"indices", "int64", "Float"});
  expect_error(
      [] {
        CsrGraph(i64({0, 2}), i64({0, 0}), f32({1, 2, 3}));
      },
      {"weights", "[2]", "[3]"});
  expect_error(
      [] {
        CsrGraph(i64({0, 1}), i64({0}), at::ones({1}, at::kDouble));
      },
      {"weights", "float32", "Double"});
  expect_error([] { CsrGraph(at::empty({0}, at::kLong), i64({})); }, {"indptr"});
}

TEST(CsrGraphValidation, Int32IsConverted) {
  CsrGraph g(at::tensor(std::vector<int32_t>{0, 1, 2}, at::kInt),
             at::tensor(std::vector<int32_t>{1, 0}, at::kInt));
  EXPECT_EQ(g.indptr().scalar_type(), at::kLong);
  EXPECT_EQ(g.indices().scalar_type(), at::kLong);
  EXPECT_EQ(g.num_rows(), 2);
  EXPECT_EQ(g.num_edges(), 2);
  EXPECT_TRUE(g.is_square());
}

TEST(CsrGraph, DegreesRowIdsEdgeIndex) {
  CsrGraph g = tiny_directed_graph();
  EXPECT_TRUE(at::equal(g.in_degree(), i64({2, 1, 3, 0, 0})));
  EXPECT_TRUE(at::equal(g.out_degree(), i64({2, 1, 1, 2, 0})));
  EXPECT_TRUE(at::equal(g.row_ids(), i64({0, 0, 1, 2, 2, 2})));
  EXPECT_TRUE(
      at::equal(g.edge_index(), at::stack({i64({2, 3, 0, 0, 1, 3}), i64({0, 0, 1, 2, 2, 2})})));
  EXPECT_EQ(&g.row_ids(), &g.row_ids());  // cached
}

TEST(CsrGraph, TransposeMatchesDenseAndPerm) {
  for (bool rect : {false, true}) {
    CsrGraph g = random_graph(40, 4, 7, 2, /*weighted=*/true);
    if (rect) {  // drop the last 5 rows: [35, 40]
      const int64_t e = g.indptr()[35].item<int64_t>();
      g = CsrGraph(g.indptr().slice(0, 0, 36), g.indices().slice(0, 0, e),
                   g.weights().slice(0, 0, e), 40);
    }
    const CsrGraph& t = g.transposed();
    EXPECT_EQ(t.num_rows(), g.num_cols());
    EXPECT_EQ(t.num_cols(), g.num_rows());
    EXPECT_TRUE(at::equal(dense_adjacency(t), dense_adjacency(g).t()));
    const at::Tensor& perm = g.transpose_perm();
    EXPECT_TRUE(at::equal(t.weights(), g.weights().index_select(0, perm)));
    EXPECT_TRUE(at::equal(t.indices(), g.row_ids().index_select(0, perm)));
    EXPECT_TRUE(at::equal(t.row_ids(), g.indices().index_select(0, perm)));
    // Stable: each transposed row lists its original rows in ascending order.
    auto ip = t.indptr().accessor<int64_t, 1>();
    auto ix = t.indices().accessor<int64_t, 1>();
    for (int64_t j = 0; j < t.num_rows(); ++j) {
      for (int64_t k = ip[j] + 1; k < ip[j + 1]; ++k) EXPECT_LE(ix[k - 1], ix[k]);
    }
  }
}

TEST(CsrGraph, CachesAreSharedByCopiesAndStructureByWithWeights) {
  CsrGraph g = random_graph(30, 3, 1, 2, true);
  CsrGraph copy = g;
  EXPECT_EQ(&g.transposed(), &copy.transposed());
  EXPECT_EQ(&g.gcn_normalized(), &copy.gcn_normalized());
  const at::Tensor w2 = at::rand({g.num_edges()});
  CsrGraph h = g.with_weights(w2);
  EXPECT_EQ(h.indptr().data_ptr(), g.indptr().data_ptr());
  EXPECT_EQ(h.transpose_perm().data_ptr(), g.transpose_perm().data_ptr());
  EXPECT_EQ(h.row_ids().data_ptr(), g.row_ids().data_ptr());
  EXPECT_EQ(h.transposed().indices().data_ptr(), g.transposed().indices().data_ptr());
  EXPECT_TRUE(at::equal(h.transposed().weights(), w2.index_select(0, g.transpose_perm())));
  EXPECT_FALSE(at::equal(h.transposed().weights(), g.transposed().weights()));
  EXPECT_NE(&h.gcn_normalized(), &g.gcn_normalized());
  expect_error([&] { g.with_weights(at::ones({3})); }, {"weights", "[3]"});
}

TEST(CsrGraph, WithSelfLoopsAddsOnlyMissingOnes) {
  CsrGraph g = random_graph(50, 4, 3, 2, /*weighted=*/true, /*allow_self_loops=*/true);
  const at::Tensor a = dense_adjacency(g);
  const at::Tensor diag = a.diagonal();
  ASSERT_GT((diag != 0).sum().item<int64_t>(), 0) << "the test needs some self loops";
  ASSERT_GT((diag == 0).sum().item<int64_t>(), 0) << "and some rows without one";
  CsrGraph s = g.with_self_loops();
  const at::Tensor expected = a + at::diag((diag == 0).to(at::kFloat));
  EXPECT_TRUE(at::equal(dense_adjacency(s), expected));
  EXPECT_EQ(s.num_edges(), g.num_edges() + (diag == 0).sum().item<int64_t>());
  // Unweighted input stays unweighted.
  EXPECT_FALSE(tiny_directed_graph().with_self_loops().has_weights());
  EXPECT_EQ(tiny_directed_graph().with_self_loops().num_edges(), 11);
}

TEST(CsrGraph, GcnNormalizedTinyByHand) {
  // A + I rows (sources): 0: {2, 3, 0}; 1: {0, 1}; 2: {0, 1, 3, 2}; 3: {3}; 4: {4}.
  // In-degrees of A + I: d = [3, 2, 4, 1, 1]; norm(j -> i) = 1 / sqrt(d_i d_j).
  const CsrGraph g = tiny_directed_graph();
  const CsrGraph& n = g.gcn_normalized();  // valid while g lives
  at::Tensor expected = at::zeros({5, 5});
  auto set = [&](int i, int j, double v) { expected[i][j] = v; };
  set(0, 2, 1 / std::sqrt(12.0));
  set(0, 3, 1 / std::sqrt(3.0));
  set(0, 0, 1 / 3.0);
  set(1, 0, 1 / std::sqrt(6.0));
  set(1, 1, 1 / 2.0);
  set(2, 0, 1 / std::sqrt(12.0));
  set(2, 1, 1 / std::sqrt(8.0));
  set(2, 3, 1 / 2.0);
  set(2, 2, 1 / 4.0);
  set(3, 3, 1.0);
  set(4, 4, 1.0);
  EXPECT_TRUE(at::allclose(dense_adjacency(n), expected, 1e-6, 1e-7));
  EXPECT_EQ(n.num_edges(), 11);
}

TEST(CsrGraph, GcnNormalizedMatchesDenseFormula) {
  for (bool weighted : {false, true}) {
    CsrGraph g = random_graph(60, 5, 11, 3, weighted, /*allow_self_loops=*/true);
    at::Tensor a = dense_adjacency(g);
    a = a + at::diag((a.diagonal() == 0).to(at::kFloat));
    const at::Tensor dinv = a.sum(1).pow(-0.5);
    const at::Tensor expected = dinv.unsqueeze(1) * a * dinv.unsqueeze(0);
    EXPECT_TRUE(at::allclose(dense_adjacency(g.gcn_normalized()), expected, 1e-5, 1e-7));
  }
}

TEST(CsrGraph, MeanNormalized) {
  CsrGraph g = random_graph(40, 4, 5, 2, true);
  const at::Tensor deg = g.in_degree().clamp_min(1).to(at::kFloat);
  const at::Tensor expected = dense_adjacency(g) / deg.unsqueeze(1);
  EXPECT_TRUE(at::allclose(dense_adjacency(g.mean_normalized()), expected, 1e-6, 1e-7));
}

TEST(CsrGraph, FromEdgeIndexOrdersByTargetThenSource) {
  // (source, target) with a duplicate 3 -> 0 and an isolated node 4.
  const at::Tensor ei = at::stack({i64({3, 2, 0, 3, 1, 0, 3}), i64({2, 0, 2, 0, 2, 1, 0})});
  const at::Tensor w = f32({1, 2, 3, 4, 5, 6, 7});
  CsrGraph g = CsrGraph::from_edge_index(ei, 5, w);
  EXPECT_TRUE(at::equal(g.indptr(), i64({0, 3, 4, 7, 7, 7})));
  EXPECT_TRUE(at::equal(g.indices(), i64({2, 3, 3, 0, 0, 1, 3})));
  EXPECT_TRUE(at::equal(g.weights(), f32({2, 4, 7, 6, 3, 5, 1})));
  expect_error([&] { CsrGraph::from_edge_index(ei, 3); }, {"edge_index[0, 0] = 3", "[0, 3)"});
  expect_error([&] { CsrGraph::from_edge_index(ei.t(), 5); }, {"edge_index", "[2, E]"});
}

TEST(CsrGraph, UndefinedGraphThrows) {
  CsrGraph g;
  EXPECT_FALSE(g.defined());
  EXPECT_THROW(g.transposed(), c10::Error);
  EXPECT_THROW(g.gcn_normalized(), c10::Error);
}

}  // namespace
}  // namespace qgnn
