// Quantization hooks: packed inference equals the fake-quant model, the memory report
// equals the bytes packed storage really holds, and fine-tuning gradients flow (STE).
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qgnn/nn/models.h"
#include "qgnn/quant/quant_hooks.h"
#include "testing/graphs.h"

namespace qgnn {
namespace {

constexpr const char* kPolicy = "emb=4;att=3;layer1.emb=2;taq=4@<=2,3@<=5,2";

NodeFeatures random_features(int64_t n, int64_t f, uint64_t seed) {
  torch::manual_seed(seed);
  auto x = torch::rand({n, f}) * (torch::rand({n, f}) < 0.3).to(torch::kFloat);
  return NodeFeatures::from_dense(x);
}

TEST(PackedInference, EqualsTheFakeQuantModelForEveryLayerType) {
  CsrGraph g = testing::random_graph(60, 4.0, 31, /*isolated=*/3);
  GraphOperators ops(g);
  NodeFeatures x = random_features(60, 24, 32);
  for (const std::string& policy_text :
       {std::string(kPolicy), std::string(kPolicy) + ";round=nonzero;cols=on"}) {
    for (const char* name : {"gcn", "gat", "agnn", "sage", "gin"}) {
      SCOPED_TRACE(policy_text);
      torch::manual_seed(0);
      Preset p = make_preset("kipf", name, 24, 5);
      p.model.row_normalize_input = true;
      GnnModel model(p.model);
      model.eval();
      torch::NoGradGuard ng;
      const BitPolicy policy = BitPolicy::parse(policy_text);
      model.set_quant_hook(std::make_shared<FakeQuantHook>(policy));
      auto fake = model.forward(ops, x);
      auto packed_hook = std::make_shared<PackedInferenceHook>(policy);
      model.set_quant_hook(packed_hook);
      auto real = model.forward(ops, NodeFeatures(pack_input(x, ops, policy)));
      EXPECT_TRUE(torch::allclose(fake, real, 1e-4, 1e-4))
          << name << ": max diff " << (fake - real).abs().max().item<double>();
      EXPECT_TRUE(torch::equal(fake.argmax(1), real.argmax(1))) << name;
      // The report computed from shapes equals what packed storage holds, point by point.
      MemoryReport report = memory_report(model, ops, policy);
      ASSERT_EQ(report.points.size(), packed_hook->stored_bytes().size()) << name;
      for (const PointMemory& m : report.points) {
        const QuantPoint& key = m.info.point;
        ASSERT_TRUE(packed_hook->stored_bytes().count(key)) << name << " layer " << key.layer;
        EXPECT_EQ(packed_hook->stored_bytes().at(key), m.stored_bytes)
            << name << " layer " << key.layer << " " << to_string(key.role);
      }
      // Quantization changes the output (the test is not vacuous).
      model.set_quant_hook(nullptr);
      EXPECT_FALSE(torch::allclose(model.forward(ops, x), fake, 1e-4, 1e-4)) << name;
    }
  }
}

// Counts ATen CPU allocations (every tensor's storage) of at least `limit` bytes.
class LargeAllocationCounter : public c10::Allocator {
 public:
  static constexpr uint8_t kPriority = 1;
  LargeAllocationCounter() : inner_(c10::GetCPUAllocator()) {
    c10::SetCPUAllocator(this, kPriority);
  }
  ~LargeAllocationCounter() override { c10::SetCPUAllocator(inner_, kPriority); }
  c10::DataPtr allocate(size_t n) const override {
    if (n >= limit.load()) {
      ++count;
      size_t prev = largest.load();
      while (n > prev && !largest.compare_exchange_weak(prev, n)) {
      }
    }
    return inner_->allocate(n);
  }
  c10::DeleterFnPtr raw_deleter() const override { return inner_->raw_deleter(); }

  std::atomic<size_t> limit{std::numeric_limits<size_t>::max()};
  mutable std::atomic<int64_t> count{0};
  mutable std::atomic<size_t> largest{0};

 private:
  c10::Allocator* inner_;
};

// Delegates to a hook and arms the counter while each layer runs: after the hook has
// stored layer l's input, until the next point, allocations of limit(l) bytes or more
// are counted.
class PhaseHook : public QuantHook {
 public:
  PhaseHook(std::shared_ptr<QuantHook> inner, LargeAllocationCounter& c,
            std::function<size_t(int64_t)> limit)
      : inner_(std::move(inner)), c_(c), limit_(std::move(limit)) {}
  NodeFeatures embedding(int64_t layer, const NodeFeatures& h, const GraphOperators& ops) override {
    c_.limit = std::numeric_limits<size_t>::max();
    NodeFeatures out = inner_->embedding(layer, h, ops);
    c_.limit = limit_(layer);
    return out;
  }
  at::Tensor attention(int64_t layer, const at::Tensor& alpha, const CsrGraph& g) override {
    return inner_->attention(layer, alpha, g);
  }
  std::shared_ptr<const PackedTensor> pack_attention(
      int64_t layer, const at::Tensor& row_indptr, int64_t heads,
      const std::vector<int64_t>& bounds,
      const std::function<void(int64_t, float*)>& produce) override {
    return inner_->pack_attention(layer, row_indptr, heads, bounds, produce);
  }
  std::shared_ptr<const PackedTensor> pack_embedding(
      int64_t layer, const GraphOperators& ops, int64_t cols, const std::vector<int64_t>& bounds,
      const std::function<void(int64_t, float*)>& produce) override {
    return inner_->pack_embedding(layer, ops, cols, bounds, produce);
  }

 private:
  std::shared_ptr<QuantHook> inner_;
  LargeAllocationCounter& c_;
  std::function<size_t(int64_t)> limit_;
};

TEST(PackedInference, NoLayerHoldsAWholeFloatInputOrAttentionTensor) {
  // Sizes chosen so that the float tensors a layer may make (its linear outputs, scores,
  // the aggregation) are smaller than its decoded input [N, F_l] and its attention
  // [E', H_l]: any allocation that large while a layer runs means one of those was
  // materialized.
  const int64_t n = 400, f = 200, classes = 5;
  CsrGraph g = testing::random_graph(n, 20.0, 8, /*isolated=*/2);
  GraphOperators ops(g);
  const int64_t e = ops.self_loops().num_edges();
  at::manual_seed(1);
  const at::Tensor xd = at::rand({n, f}) * (at::rand({n, f}) < 0.5).to(at::kFloat);
  const BitPolicy policy = BitPolicy::parse("emb=4;att=8;layer1.emb=3");
  for (const char* name : {"gcn", "gat", "agnn", "sage"}) {
    SCOPED_TRACE(name);
    torch::manual_seed(0);
    Preset p = make_preset("kipf", name, f, classes);
    if (std::string(name) != "gat") p.model.hidden_channels = 48;
    GnnModel model(p.model);
    model.eval();
    torch::NoGradGuard ng;
    std::vector<int64_t> width, heads;  // per embedding point: F_l, and H_l of attention
    for (const QuantPointInfo& q : model.quant_points(ops)) {
      const int64_t l = q.point.layer;
      if (q.point.role == QuantRole::kAttention) {
        heads.resize(static_cast<size_t>(l) + 1, 0);
        heads[l] = q.cols;
      } else {
        width.resize(static_cast<size_t>(l) + 1, 0);
        width[l] = q.cols;
      }
    }
    auto limit = [&](int64_t layer) {
      size_t l = static_cast<size_t>(n * width[layer] * 4);
      if (static_cast<size_t>(layer) < heads.size() && heads[layer] > 0) {
        l = std::min(l, static_cast<size_t>(e * heads[layer] * 4));
      }
      return l;
    };
    const NodeFeatures x(pack_input(NodeFeatures(xd), ops, policy));
    auto packed = std::make_shared<PackedInferenceHook>(policy);
    model.set_quant_hook(std::make_shared<FakeQuantHook>(policy));
    const at::Tensor fake = model.forward(ops, NodeFeatures(xd));
    model.set_quant_hook(packed);
    model.forward(ops, x);  // warm-up: graph caches (self loops, normalization)
    LargeAllocationCounter counter;
    model.set_quant_hook(std::make_shared<PhaseHook>(packed, counter, limit));
    const at::Tensor real = model.forward(ops, x);
    counter.limit = std::numeric_limits<size_t>::max();
    EXPECT_EQ(counter.count.load(), 0) << "largest " << counter.largest.load() << " bytes";
    EXPECT_TRUE(at::allclose(fake, real, 1e-4, 1e-4)) << (fake - real).abs().max().item<float>();
    EXPECT_TRUE(at::equal(fake.argmax(1), real.argmax(1)));
    if (std::string(name) == "gat" || std::string(name) == "agnn") {
      // The check can fail: the fake-quantized model computes attention as a whole tensor.
      LargeAllocationCounter control;
      model.set_quant_hook(
          std::make_shared<PhaseHook>(std::make_shared<FakeQuantHook>(policy), control, limit));
      model.forward(ops, NodeFeatures(xd));
      control.limit = std::numeric_limits<size_t>::max();
      EXPECT_GT(control.count.load(), 0);
    }
  }
}

TEST(PackedInference, HiddenOutputIsPackedAsItIsProduced) {
  // A GCN / GAT hidden layer hands its output to the hook a block of rows at a time: the
  // only [N, hidden]-sized float allocation of the forward is layer 0's linear output
  // X W (the input is already packed; layer 1's tensors are class-wide). AGNN's
  // propagation layers read their input's codes and pack their output the same way, so its
  // only one is the input layer's output. The fake-quant model, which holds the output
  // too, shows the count can exceed 1.
  const int64_t n = 400, f = 200, classes = 5;
  // Some nodes carry their own self loop: GAT reads A + I from A, adding only the others.
  CsrGraph g = testing::random_graph(n, 20.0, 8, /*isolated=*/2, /*weighted=*/false,
                                     /*allow_self_loops=*/true);
  GraphOperators ops(g);
  ASSERT_GT(testing::dense_adjacency(g).diagonal().ne(0).sum().item<int64_t>(), 0);
  at::manual_seed(2);
  const at::Tensor xd = at::rand({n, f}) * (at::rand({n, f}) < 0.5).to(at::kFloat);
  for (const char* spec :
       {"emb=4;att=8;layer1.emb=3", "emb=4;att=8;emb.gran=tensor;layer1.emb=2"}) {
    const BitPolicy policy = BitPolicy::parse(spec);
    for (const char* name : {"gcn", "gat", "agnn"}) {
      SCOPED_TRACE(std::string(name) + " " + spec);
      torch::manual_seed(0);
      Preset p = make_preset("kipf", name, f, classes);
      if (std::string(name) != "gat") p.model.hidden_channels = 48;  // GAT: 8 heads x 8
      GnnModel model(p.model);
      model.eval();
      torch::NoGradGuard ng;
      const int64_t hidden = model.quant_points(ops)[name == std::string("gat") ? 2 : 1].cols;
      ASSERT_GE(hidden, 48);
      const NodeFeatures x(pack_input(NodeFeatures(xd), ops, policy));
      auto hook = std::make_shared<PackedInferenceHook>(policy);
      model.set_quant_hook(std::make_shared<FakeQuantHook>(policy));
      const at::Tensor fake = model.forward(ops, NodeFeatures(xd));
      model.set_quant_hook(hook);
      model.forward(ops, x);  // warm-up: graph caches
      const size_t limit = static_cast<size_t>(n * hidden * 4);
      at::Tensor real;
      {
        LargeAllocationCounter counter;
        counter.limit = limit;
        real = model.forward(ops, x);
        counter.limit = std::numeric_limits<size_t>::max();
        EXPECT_EQ(counter.count.load(), 1) << "largest " << counter.largest.load();
      }
      EXPECT_TRUE(hook->stored_bytes().count(QuantPoint{1, QuantRole::kEmbedding}));
      // Packed X W and the fake model's dense X W round differently (1e-7), which can move
      // an attention or hidden value across a code boundary (about 2e-3 here); a wrong
      // edge order or self loop would move logits by O(1).
      EXPECT_TRUE(at::allclose(fake, real, 1e-2, 1e-2)) << (fake - real).abs().max().item<float>();
      EXPECT_TRUE(at::equal(fake.argmax(1), real.argmax(1)));
      LargeAllocationCounter control;
      control.limit = limit;
      model.set_quant_hook(std::make_shared<FakeQuantHook>(policy));
      model.forward(ops, NodeFeatures(xd));
      control.limit = std::numeric_limits<size_t>::max();
      EXPECT_GE(control.count.load(), 2);
    }
  }
}

TEST(PackedSize, EqualsPackedTensorBytes) {
  torch::manual_seed(3);
  for (int64_t cols : {1, 7, 9, 33}) {
    auto x = torch::randn({40, cols});
    auto deg = torch::randint(0, 12, {40}, torch::kLong);
    for (const char* spec :
         {"emb=1", "emb=3", "emb=8", "emb=16", "emb=32", "emb=5;taq=6@<=3,2",
          "emb=8;emb.taq=4,3,2;emb.gran=tensor", "emb=8;taq=16@<=2,4;gran=bucket"}) {
      BitPolicy policy = BitPolicy::parse(spec);
      const Quantizer q = policy.quantizer({0, QuantRole::kEmbedding});
      RowBits rb = q.row_bits(deg);
      PackedTensor packed = q.pack(x, rb);
      PackedSize size = q.packed_size(40, cols, rb);
      EXPECT_EQ(size.bytes, packed.nbytes()) << spec << " F=" << cols;
      EXPECT_EQ(size.code_bytes, packed.code_bytes()) << spec << " F=" << cols;
    }
  }
}

TEST(FakeQuantHook, FineTuningGradientsReachEveryParameter) {
  CsrGraph g = testing::random_graph(40, 3.0, 5);
  GraphOperators ops(g);
  NodeFeatures x = random_features(40, 12, 6);
  torch::manual_seed(1);
  GnnModel model(make_preset("kipf", "gat", 12, 3).model);
  model.set_quant_hook(std::make_shared<FakeQuantHook>(BitPolicy::parse("bits=2")));
  model.train();
  auto loss = model.forward(ops, x).pow(2).mean();
  loss.backward();
  for (const auto& p : model.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

// Regression: the cache of constant inputs was keyed by data pointer, so a hidden
// embedding computed later at a reused address got the previous one's quantized values
// (evaluations during fine-tuning then depended on the allocator).
TEST(FakeQuantHook, NeverServesAStaleCopyForANewTensorAtAReusedAddress) {
  GraphOperators ops(testing::random_graph(50, 3.0, 4));
  FakeQuantHook hook(BitPolicy::parse("emb=2"));
  const RowBits rb = hook.policy().row_bits({1, QuantRole::kEmbedding}, embedding_row_degree(ops));
  // Two different tensors over the same memory: what a freed and reallocated hidden
  // embedding looks like to a pointer-keyed cache.
  std::vector<float> buffer(50 * 8);
  for (int i = 0; i < 3; ++i) {
    at::Tensor fresh = torch::randn({50, 8});
    std::copy(fresh.data_ptr<float>(), fresh.data_ptr<float>() + buffer.size(), buffer.begin());
    at::Tensor h = torch::from_blob(buffer.data(), {50, 8});
    const at::Tensor got = hook.embedding(1, NodeFeatures(h), ops).to_dense();
    EXPECT_TRUE(got.equal(fake_quantize(fresh, rb, Granularity::kRow))) << "iteration " << i;
  }
  // The same input tensor object is still served from the cache.
  at::Tensor x = torch::randn({50, 8});
  const at::Tensor a = hook.embedding(0, NodeFeatures(x), ops).dense();
  EXPECT_TRUE(hook.embedding(0, NodeFeatures(x), ops).dense().is_same(a));
}

// The undirected 10-node path 0 - 1 - ... - 9 (both directions of each edge).
GraphOperators path_graph_10() {
  auto ei = torch::tensor({{0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9},
                           {1, 0, 2, 1, 3, 2, 4, 3, 5, 4, 6, 5, 7, 6, 8, 7, 9, 8}},
                          torch::kLong);
  return GraphOperators(CsrGraph::from_edge_index(ei, 10));
}

// A 2-layer GCN with hidden 4 and 2 classes: points X [n, in] and h1 [n, 4].
ModelConfig hand_gcn_config(int64_t in_channels) {
  ModelConfig c;
  c.model = "gcn";
  c.in_channels = in_channels;
  c.hidden_channels = 4;
  c.out_channels = 2;
  return c;
}

TEST(MemoryReport, MatchesDesignAccountingByHand) {
  // GCN 2 layers on a 10-node path, F = 16, hidden 4: points are X [10, 16] and h1 [10, 4].
  const GraphOperators ops = path_graph_10();
  GnnModel model(hand_gcn_config(16));
  MemoryReport r = memory_report(model, ops, BitPolicy::parse("emb=2;layer1.emb=32"));
  // fp32: (160 + 40) values * 4 bytes. Stored: X at 2 bits, per-row params: 10 rows *
  // 4 bytes of codes + 10 * 8 bytes (scale, lo); h1 at 32 bits: 160 bytes.
  EXPECT_EQ(r.fp32_bytes, 800);
  EXPECT_EQ(r.dense_bytes, 40 + 80 + 160);
  EXPECT_EQ(r.dense_code_bytes, 40 + 160);
  EXPECT_DOUBLE_EQ(r.average_bits(), 8.0 * 200 / 200);
  EXPECT_DOUBLE_EQ(r.saving(), 800.0 / 280.0);
  // No index list: as stored equals dense.
  EXPECT_EQ(r.stored_bytes, r.dense_bytes);
  EXPECT_EQ(r.stored_code_bytes, r.dense_code_bytes);
  EXPECT_DOUBLE_EQ(r.stored_saving(), r.saving());
}

// ---- the input point stored as an index list (sparse 1-bit inputs) ----

// 0/1 bag-of-words rows at `density` (row 1 all zeros, row 2 all ones), seeded.
at::Tensor sparse_binary(int64_t n, int64_t f, double density, uint64_t seed) {
  torch::manual_seed(seed);
  at::Tensor x = (torch::rand({n, f}) < density).to(torch::kFloat);
  x[1].zero_();
  x[2].fill_(1.0f);
  return x;
}

// Sparse non-binary rows, every 5th moved to negative values (lo != 0; per-tensor ranges
// then make zeros code 1).
at::Tensor sparse_valued(int64_t n, int64_t f, double density, uint64_t seed) {
  torch::manual_seed(seed);
  at::Tensor x = (torch::rand({n, f}) < density).to(torch::kFloat) * (torch::rand({n, f}) + 0.1);
  for (int64_t r = 0; r < n; r += 5) x[r].sub_(3.0f);
  return x;
}

TEST(InputCodeStats, OnesEqualThePackedCodesEveryGranularityAndGrouping) {
  const int64_t n = 80, f = 300;
  const at::Tensor deg = torch::randint(0, 12, {n}, torch::kLong);
  for (const auto& [name, x] : std::vector<std::pair<std::string, at::Tensor>>{
           {"binary", sparse_binary(n, f, 0.02, 1)}, {"valued", sparse_valued(n, f, 0.05, 2)}}) {
    const InputCodeStats dense_stats{NodeFeatures(x)};
    const InputCodeStats sparse_stats{NodeFeatures::from_dense(x, 1.0)};
    ASSERT_TRUE(NodeFeatures::from_dense(x, 1.0).is_sparse());
    InputCodeStats chunked;
    for (int64_t r = 0; r < n; r += 30)
      chunked.append_rows(x.narrow(0, r, std::min<int64_t>(30, n - r)));
    EXPECT_EQ(chunked.num_rows(), n);
    for (const char* spec :
         {"emb=1", "emb=1;emb.gran=tensor", "emb=1;emb.gran=bucket", "emb=1;taq=4@<=2,3@<=5,2",
          "emb=1;taq=4@<=2,3@<=5,2;gran=bucket", "emb=1;emb.taq=4,3,2;emb.gran=tensor",
          "emb=1;emb.taq=4,3,2;emb.gran=bucket"}) {
      const BitPolicy policy = BitPolicy::parse(spec);
      const RowBits rb = policy.row_bits({0, QuantRole::kEmbedding}, deg);
      const Granularity gran = policy.spec({0, QuantRole::kEmbedding}).granularity;
      // Reference: the codes the packer stores (as a bitmap).
      const int64_t expect = PackedTensor::pack(x, rb, gran, PackLayoutChoice::kBitmap)
                                 .codes_as_int()
                                 .sum()
                                 .item<int64_t>();
      // With kNonzero rounding and with column scales (computed on x, as the hooks do).
      for (const bool cols : {false, true}) {
        for (const Rounding rounding : {Rounding::kNearest, Rounding::kNonzero}) {
          QuantOptions opt;
          opt.rounding = rounding;
          if (cols) opt.column_scale = column_scales(x);
          const int64_t want = PackedTensor::pack(x, rb, gran, PackLayoutChoice::kBitmap, opt)
                                   .codes_as_int()
                                   .sum()
                                   .item<int64_t>();
          const std::string what =
              std::string(name) + " " + spec + " " + to_string(rounding) + (cols ? " cols" : "");
          EXPECT_EQ(dense_stats.ones(rb, gran, rounding, cols), want) << what;
          EXPECT_EQ(sparse_stats.ones(rb, gran, rounding, cols), want) << what << " (sparse)";
          if (gran == Granularity::kRow && !cols) {
            EXPECT_EQ(chunked.ones(rb, gran, rounding), want) << what << " (chunked)";
          }
        }
      }
      EXPECT_THROW(chunked.ones(rb, gran, Rounding::kNearest, true), c10::Error);
      EXPECT_EQ(dense_stats.ones(rb, gran), expect) << name << " " << spec;
      EXPECT_EQ(sparse_stats.ones(rb, gran), expect) << name << " " << spec << " (sparse)";
      EXPECT_EQ(dense_stats.ones(rb, gran), expect) << name << " " << spec << " (cached)";
      if (gran == Granularity::kRow) {
        EXPECT_EQ(chunked.ones(rb, gran), expect) << name << " " << spec << " (chunked)";
      } else {
        EXPECT_THROW(chunked.ones(rb, gran), c10::Error) << spec;
      }
    }
  }
  at::Tensor bad = sparse_binary(4, 8, 0.5, 3);
  bad[2][3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(InputCodeStats{NodeFeatures(bad)}, c10::Error);
  EXPECT_THROW(InputCodeStats{NodeFeatures()}, c10::Error);
  InputCodeStats c;
  c.append_rows(at::zeros({2, 8}));
  EXPECT_THROW(c.append_rows(at::zeros({2, 9})), c10::Error);
}

TEST(MemoryReport, InputIndexListEqualsPackedStorageAndPackedTensorBytes) {
  const int64_t n = 60, f = 700;
  CsrGraph g = testing::random_graph(n, 4.0, 31, /*isolated=*/3);
  GraphOperators ops(g);
  const at::Tensor xd = sparse_binary(n, f, 0.013, 7);
  int index_points = 0;
  for (const NodeFeatures& x : {NodeFeatures(xd), NodeFeatures::from_dense(xd, 1.0)}) {
    const InputCodeStats stats(x);
    for (const char* name : {"gcn", "gat", "agnn"}) {
      for (const char* spec :
           {"emb=1", "emb=1;emb.gran=tensor", "emb=1;emb.gran=bucket", "emb=1;layer1.emb=4",
            "emb=1;taq=4@<=2,3@<=5,2;att=3", "emb=1;taq=4@<=2,3@<=5,2;gran=bucket",
            "emb=1;emb.taq=4,3,2;emb.gran=tensor", "emb=2", "emb=2;taq=4@<=2,2@<=5,1",
            "emb=1;round=nonzero;cols=on;att=3", "emb=2;emb.cols=on;layer1.emb=3",
            "emb=1;emb.round=nonzero;emb.gran=tensor",
            "emb=1;layer0.emb.round=nonzero;layer0.emb.cols=on;layer1.emb=2"}) {
        SCOPED_TRACE(std::string(name) + " " + spec + (x.is_sparse() ? " sparse x" : " dense x"));
        torch::manual_seed(0);
        GnnModel model(make_preset("kipf", name, f, 5).model);
        model.eval();
        torch::NoGradGuard ng;
        const BitPolicy policy = BitPolicy::parse(spec);
        auto hook = std::make_shared<PackedInferenceHook>(policy);
        model.set_quant_hook(hook);
        model.forward(ops, NodeFeatures(pack_input(x, ops, policy)));
        const MemoryReport report = memory_report(model, ops, policy, &stats);
        const MemoryReport bitmap = memory_report(model, ops, policy);
        ASSERT_EQ(report.points.size(), hook->stored_bytes().size());
        for (size_t i = 0; i < report.points.size(); ++i) {
          const PointMemory& m = report.points[i];
          const QuantPoint& key = m.info.point;
          ASSERT_TRUE(hook->stored_bytes().count(key)) << "layer " << key.layer;
          EXPECT_EQ(hook->stored_bytes().at(key), m.stored_bytes) << "layer " << key.layer;
          EXPECT_EQ(m.dense_bytes, bitmap.points[i].stored_bytes);
          EXPECT_EQ(m.dense_code_bytes, bitmap.points[i].stored_code_bytes);
          if (key != QuantPoint{0, QuantRole::kEmbedding}) {
            EXPECT_EQ(m.layout, PackedLayout::kBitmap);
            EXPECT_EQ(m.stored_bytes, m.dense_bytes);
            continue;
          }
          // The input point as PackedTensor::pack stores it.
          const RowBits rb = policy.row_bits({0, QuantRole::kEmbedding}, embedding_row_degree(ops));
          QuantOptions opt;
          const QuantPoint p0{0, QuantRole::kEmbedding};
          const QuantSpec s0 = policy.spec(p0);
          opt.rounding = s0.rounding;
          if (s0.column_scales) opt.column_scale = column_scales(xd);
          const PackedTensor packed =
              PackedTensor::pack(xd, rb, s0.granularity, PackLayoutChoice::kAuto, opt);
          EXPECT_EQ(m.stored_bytes, packed.nbytes());
          EXPECT_EQ(m.stored_code_bytes, packed.code_bytes());
          EXPECT_EQ(m.layout, packed.layout());
          const bool one_bit = policy.bits({0, QuantRole::kEmbedding}) == 1;
          EXPECT_EQ(m.layout == PackedLayout::kIndexList, one_bit);
          if (m.layout == PackedLayout::kIndexList) {
            ++index_points;
            EXPECT_LT(m.stored_bytes, m.dense_bytes);
          }
        }
        // The headline counts dense codes whatever the layout: the report without input
        // statistics (every point a bitmap) has the same dense figures.
        EXPECT_EQ(report.dense_bytes, bitmap.stored_bytes);
        EXPECT_EQ(report.dense_bytes, bitmap.dense_bytes);
        EXPECT_DOUBLE_EQ(report.saving(), bitmap.saving());
        EXPECT_DOUBLE_EQ(report.average_bits(), bitmap.average_bits());
      }
    }
  }
  EXPECT_EQ(index_points, 2 * 3 * 10);  // inputs x models x 1-bit input policies
  // Statistics of a different input shape are rejected.
  GnnModel model(make_preset("kipf", "gcn", f, 5).model);
  const InputCodeStats other{NodeFeatures(sparse_binary(n, f + 1, 0.01, 1))};
  EXPECT_THROW(memory_report(model, ops, BitPolicy::parse("emb=1"), &other), c10::Error);
}

TEST(MemoryReport, IndexListInputByHand) {
  // The 10-node path GCN of MatchesDesignAccountingByHand with F = 1000 and 10 ones (one a
  // row): X at 1 bit, per-row ranges: indices 10 * 2 + offsets 11 * 8 = 108 code bytes +
  // params 10 * 8 = 188 (a bitmap: 10 * 125 + 80 = 1330); h1 [10, 4] at 32 bits: 160.
  const GraphOperators ops = path_graph_10();
  GnnModel model(hand_gcn_config(1000));
  at::Tensor x = torch::zeros({10, 1000});
  for (int64_t r = 0; r < 10; ++r) x[r][37 * r] = 1.0f;
  const InputCodeStats stats{NodeFeatures(x)};
  const MemoryReport r = memory_report(model, ops, BitPolicy::parse("emb=1;layer1.emb=32"), &stats);
  EXPECT_EQ(r.fp32_bytes, 4 * (10000 + 40));
  EXPECT_EQ(r.points[0].layout, PackedLayout::kIndexList);
  EXPECT_EQ(r.stored_bytes, 188 + 160);
  EXPECT_EQ(r.stored_code_bytes, 108 + 160);
  EXPECT_DOUBLE_EQ(r.stored_average_bits(), 8.0 * (108 + 160) / 10040);
  EXPECT_DOUBLE_EQ(r.stored_saving(), 40160.0 / 348.0);
  // The headline (SGQuant's accounting) counts the input as 1-bit dense codes:
  // 10 * 125 code bytes + 80 parameter bytes; h1 at 32 bits.
  EXPECT_EQ(r.dense_bytes, 1330 + 160);
  EXPECT_EQ(r.dense_code_bytes, 1250 + 160);
  EXPECT_DOUBLE_EQ(r.average_bits(), 8.0 * (1250 + 160) / 10040);
  EXPECT_DOUBLE_EQ(r.saving(), 40160.0 / 1490.0);
}

}  // namespace
}  // namespace qgnn
