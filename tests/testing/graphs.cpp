#include "testing/graphs.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

namespace qgnn::testing {

CsrGraph random_graph(int64_t n, double avg_deg, uint64_t seed, int64_t isolated, bool weighted,
                      bool allow_self_loops) {
  std::mt19937_64 rng(seed);
  const int64_t active = std::max<int64_t>(0, n - isolated);
  std::vector<int64_t> indptr{0}, indices;
  std::vector<char> used(n, 0);
  std::uniform_int_distribution<int64_t> pick(0, std::max<int64_t>(active - 1, 0));
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> row;
    if (i == 0) {
      // The hub: an edge from every active node.
      for (int64_t j = 0; j < active; ++j) {
        if (j != 0 || allow_self_loops) row.push_back(j);
      }
    } else if (i < active) {
      std::uniform_int_distribution<int64_t> deg_dist(0, static_cast<int64_t>(2 * avg_deg));
      const int64_t want = std::min<int64_t>(deg_dist(rng), active - 1);
      for (int64_t t = 0; t < 4 * want && static_cast<int64_t>(row.size()) < want; ++t) {
        const int64_t j = pick(rng);
        if ((j == i && !allow_self_loops) || used[j]) continue;
        used[j] = 1;
        row.push_back(j);
      }
      for (int64_t j : row) used[j] = 0;
    }
    std::shuffle(row.begin(), row.end(), rng);  // rows are not sorted
    indices.insert(indices.end(), row.begin(), row.end());
    indptr.push_back(static_cast<int64_t>(indices.size()));
  }
  at::Tensor ip = at::tensor(indptr, at::kLong);
  at::Tensor ix = at::tensor(indices, at::kLong);
  at::Tensor w;
  if (weighted) {
    std::uniform_real_distribution<float> wd(0.5f, 1.5f);
    std::vector<float> ws(indices.size());
    for (float& v : ws) v = wd(rng);
    w = at::tensor(ws, at::kFloat);
  }
  return CsrGraph(ip, ix, w);
}

at::Tensor dense_from_edge_values(const CsrGraph& g, const at::Tensor& w) {
  at::Tensor a = at::zeros({g.num_rows(), g.num_cols()}, w.options());
  return a.index_put({g.row_ids(), g.indices()}, w, /*accumulate=*/true);
}

at::Tensor dense_adjacency(const CsrGraph& g) {
  at::Tensor w = g.has_weights() ? g.weights() : at::ones({g.num_edges()}, at::kFloat);
  return dense_from_edge_values(g, w);
}

CsrGraph tiny_directed_graph() {
  // Edges j -> i (node 4 isolated):
  //
  //            +-------------+
  //            v             |
  //   3 -----> 0 -----> 1    |       row 0: 2, 3      (in-degree 2)
  //   |        |        |    |       row 1: 0         (in-degree 1)
  //   |        v        |    |       row 2: 0, 1, 3   (in-degree 3, the most)
  //   +------> 2 <------+    |       row 3: -         (a pure source)
  //            |             |       row 4: -         (isolated)
  //            +-------------+                        4
  at::Tensor indptr = at::tensor(std::vector<int64_t>{0, 2, 3, 6, 6, 6}, at::kLong);
  at::Tensor indices = at::tensor(std::vector<int64_t>{2, 3, 0, 0, 1, 3}, at::kLong);
  return CsrGraph(indptr, indices);
}

}  // namespace qgnn::testing

namespace qgnn::testing {

at::Tensor random_groups(int64_t n, int64_t g, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, static_cast<int>(g) - 1);
  at::Tensor t = at::empty({n}, at::kByte);
  uint8_t* p = t.data_ptr<uint8_t>();
  for (int64_t r = 0; r < n; ++r) p[r] = static_cast<uint8_t>(pick(rng));
  return t;
}

bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  const at::Tensor ac = a.contiguous(), bc = b.contiguous();
  return std::memcmp(ac.data_ptr(), bc.data_ptr(), ac.numel() * ac.element_size()) == 0;
}

}  // namespace qgnn::testing

namespace {

// Seeds libtorch's generator before every test, so a test sees the same random data
// whether it runs alone (ctest runs each test in its own process) or after others.
class SeedEveryTest : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override { torch::manual_seed(0); }
};

const bool kSeedListenerRegistered = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new SeedEveryTest);
  return true;
}();

}  // namespace
