// Layers against dense ATen references of each paper's equations, forward and gradient,
// on random directed graphs with isolated nodes and a hub.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "qgnn/nn/layers.h"
#include "qgnn/nn/models.h"
#include "qgnn/quant/packed_tensor.h"
#include "testing/graphs.h"

namespace qgnn {
namespace {

using testing::dense_adjacency;
using testing::random_graph;

// Dense A + I with existing self loops kept as they are (weight 1 added only where the
// diagonal is 0), the reference for with_self_loops().
torch::Tensor dense_with_loops(const CsrGraph& g) {
  auto a = dense_adjacency(g);
  auto diag = a.diagonal();
  return a + torch::diag(diag.eq(0).to(torch::kFloat));
}

// Row-wise softmax of `scores` restricted to entries where mask != 0 (rows without
// entries give zeros).
torch::Tensor masked_softmax(const torch::Tensor& scores, const torch::Tensor& mask) {
  auto s = scores.masked_fill(mask.eq(0), -std::numeric_limits<float>::infinity());
  auto p = torch::softmax(s, -1);
  return torch::nan_to_num(p, 0.0);
}

// Sparse and dense inputs of the same matrix.
std::vector<NodeFeatures> both_layouts(const torch::Tensor& x) {
  return {NodeFeatures(x), NodeFeatures::from_dense(x, /*max_density=*/1.0)};
}

torch::Tensor sparse_input(int64_t n, int64_t f, uint64_t seed) {
  torch::manual_seed(seed);
  auto x = torch::rand({n, f});
  return x * (torch::rand({n, f}) < 0.2).to(torch::kFloat);
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol = 1e-4) {
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_TRUE(torch::allclose(a, b, tol, tol))
      << "max abs diff " << (a - b).abs().max().item<double>();
}

// Kipf & Welling's Eq. 2 in dense ATen: D^-1/2 (A + I) D^-1/2 X W^T + b, D the (weighted)
// in-degree of A + I.
torch::Tensor dense_gcn(const CsrGraph& g, const torch::Tensor& x, const GCNConv& conv) {
  auto a = dense_with_loops(g);
  auto dinv = a.sum(1).pow(-0.5);
  return (dinv.unsqueeze(1) * a * dinv.unsqueeze(0)).matmul(x).matmul(conv->weight.t()) +
         conv->bias;
}

TEST(GCNConv, MatchesDenseKipfWellingPropagationAndGradient) {
  CsrGraph g = random_graph(40, 3.0, 7, /*isolated=*/3, /*weighted=*/false);
  for (auto [in, out] : std::vector<std::pair<int64_t, int64_t>>{{17, 5}, {4, 9}}) {
    auto x = sparse_input(40, in, 11);
    GraphOperators ops(g);
    torch::manual_seed(1);
    GCNConv conv(in, out);
    torch::nn::init::normal_(conv->bias);
    auto expected = dense_gcn(g, x, conv);
    auto grad_expected = torch::autograd::grad({expected.pow(2).sum()}, {conv->weight})[0];
    for (const auto& features : both_layouts(x)) {
      auto y = conv->forward(ops, features);
      expect_close(y, expected);
      auto grad = torch::autograd::grad({y.pow(2).sum()}, {conv->weight})[0];
      expect_close(grad, grad_expected, 1e-3);
    }
  }
}

TEST(GCNConv, InferenceMatchesDenseWithoutTheNormalizedGraph) {
  // Weighted edges and some existing self loops (kept as they are by A + I): inference
  // propagates with s * (A (s * X W) + added_loops * s * X W), never building A + I.
  CsrGraph g = random_graph(50, 4.0, 9, /*isolated=*/3, /*weighted=*/true,
                            /*allow_self_loops=*/true);
  const int64_t loops = dense_adjacency(g).diagonal().ne(0).sum().item<int64_t>();
  ASSERT_GT(loops, 0);
  ASSERT_LT(loops, 47);
  for (auto [in, out] : std::vector<std::pair<int64_t, int64_t>>{{17, 5}, {4, 9}}) {
    auto x = sparse_input(50, in, 13);
    GraphOperators ops(g);
    torch::manual_seed(3);
    GCNConv conv(in, out);
    torch::nn::init::normal_(conv->bias);
    auto expected = dense_gcn(g, x, conv);
    torch::NoGradGuard ng;
    for (const auto& features : both_layouts(x)) {
      expect_close(conv->forward(ops, features), expected);
      // Handed out block by block: a packer at 32 bits stores the floats as they are.
      int64_t blocks = 0;
      OutputPacker pack = [&](int64_t cols, const std::vector<int64_t>& bounds,
                              const std::function<void(int64_t, float*)>& produce) {
        blocks = static_cast<int64_t>(bounds.size()) - 1;
        return std::make_shared<const PackedTensor>(
            PackedTensor::pack_blocks(50, cols, bounds, RowBits::uniform(32), Granularity::kRow,
                                      Rounding::kNearest, produce));
      };
      LayerOutput r = conv->infer(ops, features, pack);
      if (in < out && !features.is_sparse()) {  // (A X) W: the normalized graph's path, dense
        EXPECT_FALSE(r.packed);
        expect_close(r.dense, expected);
      } else {
        ASSERT_TRUE(r.packed);
        EXPECT_FALSE(r.dense.defined());
        EXPECT_GE(blocks, 1);
        expect_close(r.packed->decode(), expected);
      }
    }
  }
}

TEST(GATConv, MatchesDenseMultiHeadAttention) {
  CsrGraph g = random_graph(30, 4.0, 3, /*isolated=*/2);
  auto x = sparse_input(30, 12, 5);
  GraphOperators ops(g);
  for (bool concat : {true, false}) {
    torch::manual_seed(2);
    const int64_t heads = 3, out = 4;
    GATConv conv(12, out, heads, concat, 0.2, /*attention_dropout=*/0.6);
    conv->eval();  // no attention dropout
    torch::nn::init::normal_(conv->bias);
    auto mask = dense_with_loops(g);
    auto h = x.matmul(conv->weight.t()).view({30, heads, out});
    std::vector<torch::Tensor> per_head;
    for (int64_t k = 0; k < heads; ++k) {
      auto hk = h.select(1, k);                                                  // [N, D]
      auto s_dst = hk.matmul(conv->att_dst[k]);                                  // [N]
      auto s_src = hk.matmul(conv->att_src[k]);                                  // [N]
      auto e = torch::leaky_relu(s_dst.unsqueeze(1) + s_src.unsqueeze(0), 0.2);  // [i, j]
      per_head.push_back(masked_softmax(e, mask).matmul(hk));
    }
    auto stacked = torch::stack(per_head, 1);  // [N, H, D]
    auto expected = (concat ? stacked.reshape({30, heads * out}) : stacked.mean(1)) + conv->bias;
    auto y = conv->forward(ops, NodeFeatures::from_dense(x, 1.0));
    expect_close(y, expected);
    auto params = std::vector<torch::Tensor>{conv->weight, conv->att_src, conv->att_dst};
    auto g_ref = torch::autograd::grad({expected.sin().sum()}, params);
    auto g_out = torch::autograd::grad({y.sin().sum()}, params);
    for (size_t i = 0; i < params.size(); ++i) expect_close(g_out[i], g_ref[i], 1e-3);
  }
}

TEST(GATConv, AttentionDropoutOnlyInTraining) {
  CsrGraph g = random_graph(20, 3.0, 9);
  GraphOperators ops(g);
  auto x = NodeFeatures(torch::rand({20, 6}));
  torch::manual_seed(0);
  GATConv conv(6, 4, 2, true, 0.2, 0.5);
  conv->eval();
  auto a = conv->forward(ops, x), b = conv->forward(ops, x);
  EXPECT_TRUE(torch::equal(a, b));
  conv->train();
  auto c = conv->forward(ops, x);
  EXPECT_FALSE(torch::allclose(a, c));
}

TEST(AGNNConv, MatchesDenseCosineAttention) {
  CsrGraph g = random_graph(25, 3.0, 4, /*isolated=*/2);
  GraphOperators ops(g);
  torch::manual_seed(3);
  auto x = torch::randn({25, 6}, torch::requires_grad());
  AGNNConv conv(6, true);
  {
    torch::NoGradGuard ng;
    conv->beta.fill_(1.7);
  }
  auto xn = x / x.norm(2, 1, true).clamp_min(1e-12);
  auto cos = xn.matmul(xn.t());
  auto expected = masked_softmax(conv->beta * cos, dense_with_loops(g)).matmul(x);
  auto y = conv->forward(ops, x);
  expect_close(y, expected);
  auto g_ref = torch::autograd::grad({expected.pow(3).sum()}, {x, conv->beta});
  auto g_out = torch::autograd::grad({y.pow(3).sum()}, {x, conv->beta});
  expect_close(g_out[0], g_ref[0], 1e-3);
  expect_close(g_out[1], g_ref[1], 1e-3);
}

TEST(AGNNConv, ZeroRowsGetFiniteGradients) {
  CsrGraph g = random_graph(10, 2.0, 4, /*isolated=*/1);
  GraphOperators ops(g);
  auto x = torch::rand({10, 4});
  x[3].zero_();  // a row that quantization rounded to zero
  x.requires_grad_(true);
  AGNNConv conv(4, true);
  auto grads = torch::autograd::grad({conv->forward(ops, x).sum()}, {x, conv->beta});
  EXPECT_TRUE(torch::isfinite(grads[0]).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(grads[1]).all().item<bool>());
  // The zero row's cosine is 0 whatever its direction: its gradient through the
  // normalization is zero, so it is at most what flows through aggregation (|g| <= 1 per
  // entry here since alpha sums to 1 per row and d sum / d out = 1).
  EXPECT_LE(grads[0][3].abs().max().item<double>(), 10.0);
}

TEST(SAGEConv, MatchesDenseMeanAggregator) {
  CsrGraph g = random_graph(30, 3.0, 8, /*isolated=*/3);
  GraphOperators ops(g);
  auto x = sparse_input(30, 10, 6);
  torch::manual_seed(4);
  SAGEConv conv(10, 7);
  auto a = dense_adjacency(g);
  auto deg = a.sum(1, true).clamp_min(1);
  auto expected = (a / deg).matmul(x).matmul(conv->weight_neighbors.t()) + conv->bias +
                  x.matmul(conv->weight_root.t());
  for (const auto& features : both_layouts(x)) {
    auto y = conv->forward(ops, features);
    expect_close(y, expected);
  }
  auto params = std::vector<torch::Tensor>{conv->weight_neighbors, conv->weight_root, conv->bias};
  auto g_ref = torch::autograd::grad({expected.pow(2).sum()}, params);
  auto g_out = torch::autograd::grad({conv->forward(ops, NodeFeatures(x)).pow(2).sum()}, params);
  for (size_t i = 0; i < params.size(); ++i) expect_close(g_out[i], g_ref[i], 1e-3);
}

TEST(GINConv, MatchesDenseSumAggregatorWithEps) {
  CsrGraph g = random_graph(30, 3.0, 12, /*isolated=*/2);
  GraphOperators ops(g);
  auto x = sparse_input(30, 9, 13);
  torch::manual_seed(5);
  GINConv conv(9, 16, 4);
  {
    torch::NoGradGuard ng;
    conv->eps.fill_(0.3);
  }
  auto a = dense_adjacency(g);
  auto z = (1 + conv->eps) * x + a.matmul(x);
  auto expected = torch::linear(torch::relu(torch::linear(z, conv->weight1, conv->bias1)),
                                conv->weight2, conv->bias2);
  for (const auto& features : both_layouts(x)) expect_close(conv->forward(ops, features), expected);
  auto params = std::vector<torch::Tensor>{conv->eps, conv->weight1, conv->weight2};
  auto g_ref = torch::autograd::grad({expected.pow(2).sum()}, params);
  auto g_out = torch::autograd::grad({conv->forward(ops, NodeFeatures(x)).pow(2).sum()}, params);
  for (size_t i = 0; i < params.size(); ++i) expect_close(g_out[i], g_ref[i], 1e-3);
}

TEST(GnnModel, EveryKindHasTheRightShapeAndIsDeterministicInEval) {
  CsrGraph g = random_graph(50, 4.0, 21, /*isolated=*/2);
  GraphOperators ops(g);
  auto x = NodeFeatures::from_dense(sparse_input(50, 30, 22));
  for (const char* name : {"gcn", "gat", "agnn", "sage", "gin"}) {
    for (const char* preset : {"kipf", "sgquant"}) {
      torch::manual_seed(0);
      Preset p = make_preset(preset, name, 30, 4);
      GnnModel model(p.model);
      model.eval();
      auto a = model.forward(ops, x);
      auto b = model.forward(ops, x);
      EXPECT_EQ(a.sizes(), (std::vector<int64_t>{50, 4})) << name;
      EXPECT_TRUE(torch::equal(a, b)) << name;
      EXPECT_TRUE(torch::isfinite(a).all().item<bool>()) << name;
      model.train();
      auto c = model.forward(ops, x);  // dropout active
      EXPECT_FALSE(torch::equal(a, c)) << name;
    }
  }
}

TEST(GnnModel, PresetsFollowThePapers) {
  auto gcn = make_preset("kipf", "gcn", 1433, 7);
  EXPECT_EQ(gcn.model.hidden_channels, 16);
  EXPECT_DOUBLE_EQ(gcn.model.dropout, 0.5);
  EXPECT_DOUBLE_EQ(gcn.optim.lr, 0.01);
  EXPECT_DOUBLE_EQ(gcn.optim.weight_decay, 5e-4);
  auto gat = make_preset("kipf", "gat", 1433, 7);
  EXPECT_EQ(gat.model.heads * gat.model.hidden_channels, 64);
  EXPECT_DOUBLE_EQ(gat.optim.lr, 0.005);
  EXPECT_DOUBLE_EQ(gat.model.attention_dropout, 0.6);
  EXPECT_EQ(make_preset("kipf", "agnn", 10, 3).model.num_layers, 4);
  EXPECT_EQ(make_preset("sgquant", "gcn", 10, 3).model.hidden_channels, 32);
  auto sgq_gat = make_preset("sgquant", "gat", 10, 3);
  EXPECT_EQ(sgq_gat.model.heads * sgq_gat.model.hidden_channels, 256);
  EXPECT_THROW(make_preset("fast", "gcn", 10, 3), c10::Error);
  EXPECT_THROW(layer_type("mlp"), c10::Error);
}

TEST(ModelConfig, JsonRoundTripAndErrors) {
  ModelConfig c = make_preset("kipf", "gat", 100, 5).model;
  ModelConfig d = ModelConfig::from_json(c.to_json());
  EXPECT_EQ(d.to_json(), c.to_json());
  try {
    ModelConfig::from_json(R"({"model": "gcn"})");
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("in_channels"), std::string::npos);
  }
  EXPECT_THROW(ModelConfig::from_json("not json"), c10::Error);
}

}  // namespace
}  // namespace qgnn
