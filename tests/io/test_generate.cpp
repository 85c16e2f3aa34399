// Synthetic R-MAT datasets (generate_rmat, write_dataset): determinism, simple graphs of
// the requested size, symmetry, heavy-tailed degrees, homophilous labels, features that
// reward neighbourhood averaging, and a file that read_dataset accepts.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "io/io_test_util.h"
#include "qgnn/io/dataset.h"
#include "qgnn/io/generate.h"
#include "testing/guards.h"

namespace {

using qgnn::GenerateConfig;
using qgnn::GenerateResult;
using qgnn_test::ScratchDir;

GenerateConfig config(int64_t n, int64_t e, int64_t f, int64_t c, uint64_t seed = 1) {
  GenerateConfig cfg;
  cfg.num_nodes = n;
  cfg.num_edges = e;
  cfg.num_features = f;
  cfg.num_classes = c;
  cfg.seed = seed;
  return cfg;
}

bool same_arrays(const qgnn::Dataset& a, const qgnn::Dataset& b) {
  return a.graph.indptr().equal(b.graph.indptr()) && a.graph.indices().equal(b.graph.indices()) &&
         a.x.equal(b.x) && a.y.equal(b.y) && a.num_classes == b.num_classes;
}

// Every row strictly ascending (so no duplicates) and without its own id (no self loop).
void expect_simple(const qgnn::CsrGraph& g) {
  const int64_t* ip = g.indptr().data_ptr<int64_t>();
  const int64_t* ix = g.indices().data_ptr<int64_t>();
  int64_t self_loops = 0, unsorted = 0;
  for (int64_t r = 0; r < g.num_rows(); ++r) {
    for (int64_t e = ip[r]; e < ip[r + 1]; ++e) {
      self_loops += ix[e] == r;
      unsorted += e > ip[r] && ix[e] <= ix[e - 1];
    }
  }
  EXPECT_EQ(self_loops, 0);
  EXPECT_EQ(unsorted, 0) << "rows must be strictly ascending (duplicates or disorder)";
}

double same_class_fraction(const qgnn::Dataset& d) {
  const at::Tensor rows = d.graph.row_ids(), cols = d.graph.indices();
  return d.y.index_select(0, rows)
      .eq(d.y.index_select(0, cols))
      .to(at::kDouble)
      .mean()
      .item<double>();
}

// Nearest-centroid accuracy with centroids from the true labels, over all nodes.
double centroid_accuracy(const at::Tensor& h, const at::Tensor& y, int64_t c) {
  at::Tensor centroids = at::zeros({c, h.size(1)}).index_add_(0, y, h);
  centroids /= at::bincount(y, {}, c).to(at::kFloat).unsqueeze(1);
  const at::Tensor pred = at::cdist(h, centroids).argmin(1);
  return pred.eq(y).to(at::kDouble).mean().item<double>();
}

// Mean of each node's own and in-neighbours' rows of x (what a mean-aggregating GNN
// layer computes before its weights).
at::Tensor neighbourhood_mean(const qgnn::CsrGraph& g, const at::Tensor& x) {
  const qgnn::CsrGraph op = g.with_self_loops().mean_normalized();
  return at::zeros_like(x).index_add_(0, op.row_ids(),
                                      x.index_select(0, op.indices()) * op.weights().unsqueeze(1));
}

TEST(GenerateRmat, SameSeedSameArraysAnyThreadCount) {
  const GenerateConfig cfg = config(3000, 40000, 9, 4, 7);
  GenerateResult a, b;
  {
    qgnn::testing::ThreadGuard threads(1);
    a = qgnn::generate_rmat(cfg);
  }
  {
    qgnn::testing::ThreadGuard threads(2);
    b = qgnn::generate_rmat(cfg);
  }
  EXPECT_TRUE(same_arrays(a.dataset, b.dataset));
  EXPECT_EQ(a.candidates, b.candidates);

  GenerateConfig other = cfg;
  other.seed = 8;
  const GenerateResult c = qgnn::generate_rmat(other);
  EXPECT_FALSE(c.dataset.graph.indices().equal(a.dataset.graph.indices()));
  EXPECT_FALSE(c.dataset.x.equal(a.dataset.x));
  EXPECT_FALSE(c.dataset.y.equal(a.dataset.y));
}

TEST(GenerateRmat, SameSeedSameFileBytes) {
  ScratchDir dir;
  const GenerateConfig cfg = config(500, 4000, 7, 3, 3);
  qgnn::write_dataset(dir.file("a.npz"), qgnn::generate_rmat(cfg).dataset);
  qgnn::write_dataset(dir.file("b.npz"), qgnn::generate_rmat(cfg).dataset);
  const std::string a = qgnn_test::read_file_bytes(dir.file("a.npz"));
  EXPECT_GT(a.size(), 500u * 7 * 4);
  EXPECT_EQ(a, qgnn_test::read_file_bytes(dir.file("b.npz")));
}

TEST(GenerateRmat, ExactSizesAndSimpleGraph) {
  // N not a power of two; directed, undirected, odd E (undirected rounds up to pairs).
  struct Case {
    int64_t n, e;
    bool undirected;
    int64_t expected_entries;
    double homophily = 0.7;
  };
  for (const Case& k :
       {Case{1000, 12345, false, 12345}, Case{1000, 12346, true, 12346},
        Case{1000, 12345, true, 12346}, Case{17, 150, false, 150}, Case{2, 2, true, 2, 0.0}}) {
    SCOPED_TRACE("n " + std::to_string(k.n) + " e " + std::to_string(k.e) +
                 (k.undirected ? " undirected" : " directed"));
    GenerateConfig cfg = config(k.n, k.e, 5, 2);
    cfg.undirected = k.undirected;
    cfg.homophily = k.homophily;
    const GenerateResult r = qgnn::generate_rmat(cfg);
    const qgnn::Dataset& d = r.dataset;
    EXPECT_EQ(d.num_nodes(), k.n);
    EXPECT_EQ(d.graph.num_edges(), k.expected_entries);
    EXPECT_EQ(d.x.sizes(), (at::IntArrayRef{k.n, 5}));
    EXPECT_EQ(d.x.scalar_type(), at::kFloat);
    EXPECT_EQ(d.y.sizes(), (at::IntArrayRef{k.n}));
    EXPECT_EQ(d.num_classes, 2);
    EXPECT_FALSE(d.has_public_split);
    EXPECT_GE(r.candidates, (k.undirected ? (k.e + 1) / 2 : k.e));
    expect_simple(d.graph);
  }
}

TEST(GenerateRmat, UndirectedIsSymmetric) {
  const GenerateResult r = qgnn::generate_rmat(config(2000, 30000, 3, 5));
  const qgnn::CsrGraph& g = r.dataset.graph;
  const qgnn::CsrGraph& t = g.transposed();
  EXPECT_TRUE(g.indptr().equal(t.indptr()));
  EXPECT_TRUE(g.indices().equal(t.indices()));
  EXPECT_TRUE(g.in_degree().equal(g.out_degree()));
}

TEST(GenerateRmat, DirectedIsNotSymmetric) {
  GenerateConfig cfg = config(2000, 30000, 3, 5);
  cfg.undirected = false;
  const qgnn::CsrGraph& g = qgnn::generate_rmat(cfg).dataset.graph;
  EXPECT_FALSE(g.indices().equal(g.transposed().indices()));
}

TEST(GenerateRmat, HeavyTailedDegrees) {
  const GenerateResult r = qgnn::generate_rmat(config(20000, 400000, 2, 4));
  const at::Tensor deg = r.dataset.graph.in_degree().to(at::kDouble);
  const double mean = deg.mean().item<double>(), max = deg.max().item<double>();
  EXPECT_DOUBLE_EQ(mean, 20.0);
  EXPECT_EQ(static_cast<int64_t>(max), r.max_in_degree);
  EXPECT_GT(max, 20 * mean);
  // Power-law-like spread: the top 1% of nodes hold far more than 1% of the entries, and
  // the median is below the mean.
  const at::Tensor sorted = std::get<0>(deg.sort(0, /*descending=*/true));
  EXPECT_GT(sorted.slice(0, 0, 200).sum().item<double>() / deg.sum().item<double>(), 0.10);
  EXPECT_LT(deg.median().item<double>(), mean);
  // Hubs are spread over the ids, not the lowest ones.
  const int64_t hub = deg.argmax().item<int64_t>();
  EXPECT_GT(hub, 0);
  EXPECT_GT(std::get<1>(deg.topk(10)).min().item<int64_t>(), 10);
}

TEST(GenerateRmat, BalancedClasses) {
  const GenerateResult r = qgnn::generate_rmat(config(1003, 5000, 2, 10));
  const at::Tensor counts = at::bincount(r.dataset.y, {}, 10);
  EXPECT_EQ(counts.min().item<int64_t>(), 100);
  EXPECT_EQ(counts.max().item<int64_t>(), 101);
}

TEST(GenerateRmat, SameClassFractionFollowsHomophily) {
  for (double h : {0.0, 0.2, 0.7, 0.9, 1.0}) {
    for (bool undirected : {true, false}) {
      SCOPED_TRACE("h " + std::to_string(h) + (undirected ? " undirected" : " directed"));
      GenerateConfig cfg = config(5000, 100000, 2, 6);
      cfg.homophily = h;
      cfg.undirected = undirected;
      const GenerateResult r = qgnn::generate_rmat(cfg);
      const double frac = same_class_fraction(r.dataset);
      EXPECT_NEAR(frac, r.edge_homophily, 1e-12);
      // Exact up to rounding: round(h * M) same-class of M edges (or pairs).
      const int64_t m = undirected ? 50000 : 100000;
      EXPECT_DOUBLE_EQ(frac, std::round(h * m) / m);
    }
  }
}

TEST(GenerateRmat, NeighbourhoodAveragingBeatsOwnFeatures) {
  // What a GCN exploits and an MLP cannot: with h = 0.7, the mean of a node's and its
  // in-neighbours' features is much nearer its class centre than its own features.
  GenerateConfig cfg = config(5000, 100000, 32, 5, 11);
  const GenerateResult r = qgnn::generate_rmat(cfg);
  const qgnn::Dataset& d = r.dataset;
  const double own = centroid_accuracy(d.x, d.y, 5);
  const double averaged = centroid_accuracy(neighbourhood_mean(d.graph, d.x), d.y, 5);
  EXPECT_GT(own, 1.0 / 5 + 0.1);  // features carry signal
  EXPECT_LT(own, 0.8);            // ... but not enough alone
  EXPECT_GT(averaged, own + 0.15);
  // Values: per-value std near feature_std, so min(x, 1) changes (almost) nothing.
  EXPECT_NEAR(d.x.std().item<double>(), 0.2, 0.02);
  EXPECT_LT(d.x.abs().max().item<float>(), 1.0f);

  // Heterophilous labels (h = 1/C) give averaging no edge.
  cfg.homophily = 0.2;
  const GenerateResult blind = qgnn::generate_rmat(cfg);
  EXPECT_LT(centroid_accuracy(neighbourhood_mean(blind.dataset.graph, blind.dataset.x),
                              blind.dataset.y, 5),
            averaged - 0.15);
}

TEST(GenerateRmat, RoundTripsThroughReadDataset) {
  ScratchDir dir;
  const std::string path = dir.file("gen.npz");
  const GenerateResult r = qgnn::generate_rmat(config(800, 6000, 17, 4));
  for (bool compress : {false, true}) {
    qgnn::write_dataset(path, r.dataset, compress);
    const qgnn::Dataset back = qgnn::read_dataset(path, /*split_seed=*/3);
    EXPECT_TRUE(same_arrays(r.dataset, back));
    EXPECT_EQ(back.name, "gen");
    EXPECT_FALSE(back.has_public_split);
    EXPECT_EQ(back.split_seed, 3);
    EXPECT_EQ(back.train_mask.sum().item<int64_t>(), 4 * 20);
  }
}

TEST(GenerateRmat, BadConfigNamesFlagAndValue) {
  auto bad = [](auto&& edit, std::initializer_list<std::string> parts) {
    GenerateConfig cfg = config(100, 500, 4, 3);
    edit(cfg);
    qgnn_test::expect_error([&] { qgnn::generate_rmat(cfg); }, parts);
  };
  bad([](GenerateConfig& c) { c.num_nodes = 1; }, {"--nodes", "got 1"});
  bad([](GenerateConfig& c) { c.num_edges = 0; }, {"--edges", "got 0"});
  bad([](GenerateConfig& c) { c.num_edges = 9901; }, {"--edges", "9900", "got 9901"});
  bad([](GenerateConfig& c) { c.num_features = 0; }, {"--features", "got 0"});
  bad([](GenerateConfig& c) { c.num_classes = 1; }, {"--classes", "got 1"});
  bad([](GenerateConfig& c) { c.num_classes = 101; }, {"--classes", "got 101"});
  bad([](GenerateConfig& c) { c.homophily = 1.5; }, {"--homophily", "got 1.5"});
  bad([](GenerateConfig& c) { c.homophily = -0.1; }, {"--homophily", "got -0.1"});
  bad([](GenerateConfig& c) { c.rmat_a = 0.9; }, {"--rmat", "0.9"});
  bad([](GenerateConfig& c) { c.class_separation = -1; }, {"--separation", "got -1"});
}

TEST(GenerateRmat, TooDenseIsAnError) {
  // Five classes of two nodes and h = 1: at most 5 * 2 directed same-class edges exist.
  GenerateConfig cfg = config(10, 20, 2, 5);
  cfg.homophily = 1.0;
  cfg.undirected = false;
  qgnn_test::expect_error([&] { qgnn::generate_rmat(cfg); },
                          {"--edges", "20 same-class", "at most 10", "got 20"});
  cfg.num_edges = 10;  // exactly the maximum: found
  EXPECT_EQ(qgnn::generate_rmat(cfg).dataset.graph.num_edges(), 10);
  cfg.homophily = 0.5;  // 5 same-class, 5 cross-class
  EXPECT_DOUBLE_EQ(qgnn::generate_rmat(cfg).edge_homophily, 0.5);

  // Every possible edge of 64 nodes: allowed by the class sizes, but the R-MAT skew makes
  // the rarest cells too unlikely to be drawn within the candidate budget.
  cfg = config(64, 64 * 63, 2, 2);
  cfg.undirected = false;
  cfg.homophily = (2.0 * 32 * 31) / (64 * 63);
  qgnn_test::expect_error([&] { qgnn::generate_rmat(cfg); },
                          {"--edges", "R-MAT skew", "got --edges 4032"});
}

}  // namespace
