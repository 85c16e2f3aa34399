// The aggregation seam (qgnn/ops/graph_operators.h): a block (induced subgraph plus its
// 1-hop halo, global degrees, halo rows from an exchange) must give every model the
// full graph's logits on its own nodes, and the degree-driven quantizers (TAQ buckets,
// Degree-Quant masks) the global graph's degrees.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "qgnn/nn/models.h"
#include "qgnn/ops/graph_operators.h"
#include "qgnn/quant/bit_policy.h"
#include "qgnn/quant/qat.h"
#include "qgnn/quant/quant_hooks.h"
#include "qgnn/util/threads.h"
#include "testing/graphs.h"

namespace qgnn {
namespace {

using testing::random_graph;

// Every layer's input on the full graph, recorded by an exchange that changes nothing.
struct Recorder {
  std::map<int64_t, at::Tensor> inputs;
  HaloExchange exchange() {
    return [this](int64_t layer, const at::Tensor& h) {
      inputs[layer] = h.detach().clone();
      return h;
    };
  }
};

// Fills a block's halo rows from the full graph's recorded layer inputs.
HaloExchange from_record(const Recorder& rec, const at::Tensor& node_ids, int64_t targets) {
  const at::Tensor halo = node_ids.narrow(0, targets, node_ids.numel() - targets);
  return [&rec, halo, targets](int64_t layer, const at::Tensor& h) {
    return at::cat({h.narrow(0, 0, targets), rec.inputs.at(layer).index_select(0, halo)});
  };
}

// A random subset of `t` distinct nodes of [0, n), unsorted.
at::Tensor some_nodes(int64_t n, int64_t t, uint64_t seed) {
  manual_seed(seed);
  return at::randperm(n, at::kLong).narrow(0, 0, t).contiguous();
}

ModelConfig small_config(const std::string& kind) {
  Preset p = make_preset("kipf", kind, 12, 4);
  p.model.hidden_channels = 8;
  if (p.model.model == "gat") p.model.heads = 2;
  if (p.model.model == "agnn") p.model.num_layers = 2;
  return p.model;
}

void expect_rows_close(const at::Tensor& block, const at::Tensor& full, const std::string& what) {
  ASSERT_EQ(block.sizes(), full.sizes()) << what;
  const double scale = full.abs().max().item<double>();
  const double err = (block - full).abs().max().item<double>();
  EXPECT_LE(err, 1e-5 * std::max(scale, 1e-3)) << what << ": max abs error " << err;
}

TEST(GraphBlock, InducedBlockOfAHandDrawnGraph) {
  // tiny_directed_graph: 0 -> 1, 0 -> 2, 1 -> 2, 2 -> 0, 3 -> 0, 3 -> 2; node 4 isolated.
  GraphOperators full(testing::tiny_directed_graph());
  GraphBlock b = induced_block(full, at::tensor({2, 4}, at::kLong));
  // Targets 2 and 4 (given order), then the halo: 2's in-neighbours 0, 1, 3 (ascending).
  EXPECT_TRUE(at::equal(b.node_ids, at::tensor({2, 4, 0, 1, 3}, at::kLong)));
  EXPECT_EQ(b.num_targets, 2);
  EXPECT_EQ(b.ops.num_targets(), 2);
  EXPECT_TRUE(b.ops.is_block());
  EXPECT_FALSE(full.is_block());
  EXPECT_EQ(full.num_targets(), 5);
  const CsrGraph& g = b.ops.graph();
  EXPECT_TRUE(at::equal(g.indptr(), at::tensor({0, 3, 3, 3, 3, 3}, at::kLong)));
  EXPECT_TRUE(at::equal(g.indices(), at::tensor({2, 3, 4}, at::kLong)));  // 0, 1, 3 renumbered
  // Global degrees: in-degree of A, and (in-degree of A + I)^-1/2.
  EXPECT_TRUE(at::equal(b.ops.in_degree(), at::tensor({3, 0, 2, 1, 0}, at::kLong)));
  EXPECT_TRUE(at::allclose(
      b.ops.gcn_scale(), at::tensor({0.5f, 1.0f, 1 / std::sqrt(3.0f), 1 / std::sqrt(2.0f), 1.0f})));
  EXPECT_TRUE(at::equal(b.ops.degree_population(), full.in_degree()));
  EXPECT_THROW(induced_block(full, at::tensor({2, 5}, at::kLong)), c10::Error);
  EXPECT_THROW(induced_block(full, at::tensor({2, 2}, at::kLong)), c10::Error);
  EXPECT_THROW(induced_block(b.ops, at::tensor({0}, at::kLong)), c10::Error);
}

TEST(GraphBlock, EveryModelGivesTheFullGraphLogitsOnItsNodes) {
  const CsrGraph g = random_graph(80, 4.0, 7);
  manual_seed(3);
  const at::Tensor x = at::rand({80, 12});
  const at::Tensor nodes = some_nodes(80, 25, 11);
  for (const char* kind : {"gcn", "gat", "agnn", "sage", "gin"}) {
    for (bool grad : {true, false}) {  // the autograd path and the inference path
      manual_seed(5);
      GnnModel model(small_config(kind));
      model.eval();
      at::AutoGradMode mode(grad);
      Recorder rec;
      const GraphOperators full = GraphOperators(g).with_exchange(rec.exchange());
      const at::Tensor want = model.forward(full, NodeFeatures(x)).index_select(0, nodes);
      GraphBlock b = induced_block(GraphOperators(g), nodes);
      b.ops = b.ops.with_exchange(from_record(rec, b.node_ids, b.num_targets));
      const at::Tensor got =
          model.forward(b.ops, NodeFeatures(x.index_select(0, b.node_ids))).narrow(0, 0, 25);
      expect_rows_close(got.detach(), want.detach(), std::string(kind) + (grad ? " grad" : ""));
    }
  }
}

TEST(GraphBlock, GcnNeedsTheGlobalDegreesAndTheHalo) {
  // The same block with its own degrees, or without the exchange, is not the full graph:
  // the equality above is not an accident of the graph.
  const CsrGraph g = random_graph(80, 4.0, 7);
  manual_seed(3);
  const at::Tensor x = at::rand({80, 12});
  const at::Tensor nodes = some_nodes(80, 25, 11);
  manual_seed(5);
  GnnModel model(small_config("gcn"));
  model.eval();
  torch::NoGradGuard ng;
  Recorder rec;
  const at::Tensor want =
      model.forward(GraphOperators(g).with_exchange(rec.exchange()), NodeFeatures(x))
          .index_select(0, nodes);
  GraphBlock b = induced_block(GraphOperators(g), nodes);
  const NodeFeatures xb(x.index_select(0, b.node_ids));
  const GraphOperators local =
      GraphOperators(b.ops.graph()).with_exchange(from_record(rec, b.node_ids, b.num_targets));
  EXPECT_GT((model.forward(local, xb).narrow(0, 0, 25) - want).abs().max().item<double>(), 1e-3);
  EXPECT_GT((model.forward(b.ops, xb).narrow(0, 0, 25) - want).abs().max().item<double>(), 1e-3);
}

TEST(GraphBlock, TaqBucketsUseGlobalDegreeQuantiles) {
  const CsrGraph g = random_graph(200, 5.0, 21);
  const GraphOperators full(g);
  GraphBlock b = induced_block(full, some_nodes(200, 30, 4));
  const BitPolicy policy = BitPolicy::parse("emb=4;taq=4,3,2;att=8");
  const QuantPoint p{1, QuantRole::kEmbedding};
  const RowBits want = policy.row_bits(p, embedding_row_degree(full), full.degree_population());
  const RowBits got = policy.row_bits(p, embedding_row_degree(b.ops), b.ops.degree_population());
  EXPECT_TRUE(at::equal(got.row_group, want.row_group.index_select(0, b.node_ids)));
  // Quantiles of the block's own degrees would bucket differently.
  const RowBits local = policy.row_bits(p, b.ops.graph().in_degree());
  EXPECT_FALSE(at::equal(local.row_group, got.row_group));

  // The fake-quantized model (per-row ranges, TAQ) on the block equals the full graph's.
  manual_seed(3);
  const at::Tensor x = at::rand({200, 12});
  for (const char* kind : {"gcn", "sage", "gat"}) {
    manual_seed(5);
    GnnModel model(small_config(kind));
    model.eval();
    torch::NoGradGuard ng;
    model.set_quant_hook(std::make_shared<FakeQuantHook>(
        BitPolicy::parse("emb=4;emb.gran=row;taq=4,3,2;att=8;att.taq=8,6,4")));
    Recorder rec;
    const at::Tensor want = model.forward(full.with_exchange(rec.exchange()), NodeFeatures(x))
                                .index_select(0, b.node_ids.narrow(0, 0, 30));
    GraphOperators ops = b.ops.with_exchange(from_record(rec, b.node_ids, b.num_targets));
    const at::Tensor got =
        model.forward(ops, NodeFeatures(x.index_select(0, b.node_ids))).narrow(0, 0, 30);
    expect_rows_close(got, want, kind);
  }
}

TEST(GraphBlock, DegreeQuantMasksUseGlobalDegrees) {
  const CsrGraph g = random_graph(150, 4.0, 9);
  const GraphOperators full(g);
  GraphBlock b = induced_block(full, some_nodes(150, 20, 2));
  QatConfig c = QatConfig::preset("int8");
  c.degree_quant = true;
  c.p_min = 0.1;
  c.p_max = 0.9;
  QatHook hook(c);
  hook.begin_forward(full, true);
  const at::Tensor want = hook.protection_probabilities().index_select(0, b.node_ids);
  hook.begin_forward(b.ops, true);
  EXPECT_TRUE(at::equal(hook.protection_probabilities(), want));
  EXPECT_EQ(hook.protected_nodes().numel(), b.ops.num_nodes());
  // By hand for one target: p = p_min + (p_max - p_min) * #{global d_j <= d_i} / N.
  const int64_t i = b.node_ids[0].item<int64_t>();
  const int64_t d = full.in_degree()[i].item<int64_t>();
  const double f = full.in_degree().le(d).sum().item<double>() / 150.0;
  EXPECT_NEAR(hook.protection_probabilities()[0].item<double>(), 0.1 + 0.8 * f, 1e-6);
}

TEST(GraphBlock, CachesAreKeyedByOperatorsNotTensors) {
  const CsrGraph g = random_graph(50, 3.0, 1);
  const GraphOperators a(g), b(g);  // same tensors, distinct operators
  EXPECT_NE(a.id(), b.id());
  const GraphOperators copy = a;
  EXPECT_EQ(copy.id(), a.id());
  EXPECT_EQ(a.with_exchange([](int64_t, const at::Tensor& h) { return h; }).id(), a.id());
  // Degree-Quant recomputes for another graph even when its indptr is the same tensor.
  QatConfig c = QatConfig::preset("int8");
  c.degree_quant = true;
  QatHook hook(c);
  hook.begin_forward(a, true);
  const at::Tensor pa = hook.protection_probabilities();
  GraphBlock blk = induced_block(a, at::arange(10, at::kLong));
  hook.begin_forward(blk.ops, true);
  EXPECT_EQ(hook.protection_probabilities().numel(), blk.ops.num_nodes());
  hook.begin_forward(a, true);
  EXPECT_TRUE(at::equal(hook.protection_probabilities(), pa));
}

}  // namespace
}  // namespace qgnn
