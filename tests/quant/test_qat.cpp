// Quantization-aware training (Degree-Quant) and its integer models: the symmetric
// fake quantizer and its straight-through gradient, range observers on outliers,
// protective-mask probabilities against in-degree, and the integer model against the
// fake-quantized model it is converted from.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "qgnn/nn/int_model.h"
#include "qgnn/quant/int8_ops.h"
#include "qgnn/quant/qat.h"
#include "qgnn/train/trainer.h"
#include "testing/graphs.h"
#include "testing/guards.h"

namespace qgnn {
namespace {

TEST(FakeQuantizeSymmetric, ValuesAreTheNearestCodeAndGradientIsStraightThrough) {
  for (int bits : {8, 4, 2}) {
    const double qmax = symmetric_qmax(bits);
    auto x = (torch::randn({64, 5}) * 3).requires_grad_(true);
    const auto scale = torch::scalar_tensor(0.05f);
    auto y = fake_quantize_symmetric(x, scale, bits);
    // Reference in double: the nearest code (ties to even), clamped.
    auto v = x.detach().to(torch::kDouble) / 0.05f;
    auto ref = torch::clamp(torch::round(v), -qmax, qmax) * 0.05f;
    EXPECT_TRUE(torch::allclose(y.detach().to(torch::kDouble), ref, 0, 1e-6)) << bits;
    // STE: dy/dx = 1 where |x / s| <= qmax + 1/2, else 0.
    auto g = torch::randn({64, 5});
    y.backward(g);
    auto inside = (v.abs() <= qmax + 0.5).to(torch::kFloat);
    EXPECT_TRUE(x.grad().equal(g * inside)) << bits;
    EXPECT_GT(inside.sum().item<double>(), 0);
    EXPECT_LT(inside.sum().item<double>(), x.numel()) << "test should clip some values";
  }
}

TEST(FakeQuantizeSymmetric, PerChannelWeightScalesUseEachRowsMaximum) {
  auto w = torch::randn({6, 9});
  w[2].zero_();
  const auto s = weight_scale(w, 8);
  EXPECT_FLOAT_EQ(s[0].item<float>(), w[0].abs().max().item<float>() / 127);
  EXPECT_FLOAT_EQ(s[2].item<float>(), 1.0f);  // all-zero row
  const auto q = fake_quantize_symmetric(w, s, 8);
  // Each row's largest magnitude is representable exactly.
  for (int r : {0, 1, 3}) {
    EXPECT_FLOAT_EQ(q[r].abs().max().item<float>(), w[r].abs().max().item<float>());
  }
  EXPECT_TRUE((q - w).abs().le(s.unsqueeze(1) / 2 + 1e-7).all().item<bool>());
}

TEST(RangeObserver, PercentileIgnoresOutliersThatMinMaxFollows) {
  torch::manual_seed(3);
  auto x = torch::rand({20000}) * 2 - 1;  // uniform on [-1, 1]
  x[17] = 1000.0f;                        // one outlier
  x[4242] = -500.0f;
  const auto [mlo, mhi] = observe_range(x, ObserverKind::kMomentum, 99.9, 4096);
  EXPECT_FLOAT_EQ(mlo, -500.0f);
  EXPECT_FLOAT_EQ(mhi, 1000.0f);
  const auto [plo, phi] = observe_range(x, ObserverKind::kPercentile, 99.9, 4096);
  EXPECT_NEAR(plo, -1.0, 0.02);
  EXPECT_NEAR(phi, 1.0, 0.02);
  // Small tensors use every value: the 100th percentile is the maximum.
  const auto [alo, ahi] =
      observe_range(torch::tensor({3.f, -2.f, 7.f}), ObserverKind::kPercentile, 100.0, 4096);
  EXPECT_FLOAT_EQ(alo, -2.0f);
  EXPECT_FLOAT_EQ(ahi, 7.0f);
}

TEST(RangeObserver, MomentumRangeMovesTowardsNewBatchesAndFreezesAtEvaluation) {
  QatConfig c = QatConfig::preset("int8");
  c.momentum = 0.25;
  QatHook hook(c);
  GraphOperators ops(testing::random_graph(10, 2.0, 1));
  hook.begin_forward(ops, /*training=*/true);
  hook.activation(0, QuantRole::kLinear, torch::full({10, 2}, 4.0f).index_put_({0, 0}, -4.0f));
  EXPECT_FLOAT_EQ(hook.ranges().at({0, QuantRole::kLinear}).hi, 4.0f);  // first batch as is
  hook.activation(0, QuantRole::kLinear, torch::full({10, 2}, 8.0f).index_put_({0, 0}, -4.0f));
  EXPECT_FLOAT_EQ(hook.ranges().at({0, QuantRole::kLinear}).hi, 0.75f * 4 + 0.25f * 8);
  hook.begin_forward(ops, /*training=*/false);
  hook.activation(0, QuantRole::kLinear, torch::full({10, 2}, 100.0f));
  EXPECT_FLOAT_EQ(hook.ranges().at({0, QuantRole::kLinear}).hi, 5.0f);
  EXPECT_FLOAT_EQ(hook.scale(0, QuantRole::kLinear), 5.0f / 127);
  // The state round-trips (checkpoints, best-epoch restore).
  QatHook copy(QatConfig{});
  copy.load_state(hook.save_state());
  EXPECT_FLOAT_EQ(copy.scale(0, QuantRole::kLinear), 5.0f / 127);
  EXPECT_EQ(copy.config().policy.to_string(), "bits=8");
}

TEST(ProtectiveMask, ProbabilityFollowsTheInDegreeCdfBetweenPminAndPmax) {
  // In-degrees 0, 1, 1, 2, 5: CDF 1/5, 3/5, 3/5, 4/5, 1.
  const auto deg = torch::tensor({0, 1, 1, 2, 5}, torch::kLong);
  const auto p = protective_mask_probabilities(deg, 0.1, 0.5);
  const std::vector<double> want = {0.1 + 0.4 * 0.2, 0.1 + 0.4 * 0.6, 0.1 + 0.4 * 0.6,
                                    0.1 + 0.4 * 0.8, 0.5};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(p[i].item<double>(), want[i], 1e-6) << i;
  EXPECT_THROW(protective_mask_probabilities(deg, 0.6, 0.5), c10::Error);
}

TEST(ProtectiveMask, DrawnMasksMatchTheProbabilitiesAndNeverApplyAtEvaluation) {
  CsrGraph g = testing::random_graph(400, 4.0, 9);
  GraphOperators ops(g);
  QatConfig c = QatConfig::preset("int4");
  c.degree_quant = true;
  c.p_min = 0.0;
  c.p_max = 0.8;
  QatHook hook(c);
  const auto p = protective_mask_probabilities(g.in_degree(), 0.0, 0.8);
  auto freq = torch::zeros({400});
  const int draws = 400;
  for (int i = 0; i < draws; ++i) {
    hook.begin_forward(ops, true);
    freq += hook.protected_nodes().to(torch::kFloat);
  }
  freq /= draws;
  // Binomial(400, p): 5 standard deviations.
  auto tol = 5 * torch::sqrt(p * (1 - p) / draws) + 1e-3;
  EXPECT_TRUE((freq - p).abs().le(tol).all().item<bool>());
  // Node 0 is the hub (highest in-degree): protected most often.
  EXPECT_NEAR(p[0].item<double>(), 0.8, 1e-6);
  // Protected rows pass through unquantized in training; nothing is protected in eval.
  hook.begin_forward(ops, true);
  auto h = torch::randn({400, 3});
  auto q = hook.activation(0, QuantRole::kAggregate, h);
  auto m = hook.protected_nodes();
  EXPECT_TRUE(q.index({m}).equal(h.index({m})));
  EXPECT_FALSE(q.index({~m}).equal(h.index({~m})));
  hook.begin_forward(ops, false);
  EXPECT_FALSE(hook.protected_nodes().defined());
  EXPECT_FALSE(hook.activation(0, QuantRole::kAggregate, h).equal(h));
}

// Two planted classes with noisy indicator features on a random graph.
// 300 nodes in 3 random classes; node i has in-neighbours of its own class with
// probability 0.05 each and of other classes with 0.005 (about 5 and 1), no self loops,
// the last 3 nodes isolated: aggregating neighbours helps. Features: sparse binary (10%
// ones plus a class column) or Gaussian plus a class indicator. Split 60 / 60 / 180.
TrainData small_problem(uint64_t seed, bool sparse_binary) {
  const int64_t n = 300;
  torch::manual_seed(seed);
  auto y = torch::randint(0, 3, {n}, torch::kLong);
  auto same = y.unsqueeze(0).eq(y.unsqueeze(1));
  auto prob = torch::where(same, torch::full({n, n}, 0.05), torch::full({n, n}, 0.005));
  auto adj = (torch::rand({n, n}) < prob) & ~torch::eye(n, torch::kBool);
  adj.slice(0, n - 3).zero_();
  adj.slice(1, n - 3).zero_();
  auto edge = adj.nonzero();  // (i, j): edge j -> i, sorted by i
  CsrGraph g = CsrGraph::from_edge_index(torch::stack({edge.select(1, 1), edge.select(1, 0)}), n);
  at::Tensor x;
  if (sparse_binary) {
    x = (torch::rand({n, 40}) < 0.1).to(torch::kFloat);
    x.index_put_({torch::arange(n), y * 5}, 1.0f);
  } else {
    x = torch::randn({n, 24}) + 2 * torch::nn::functional::one_hot(y, 24).to(torch::kFloat);
  }
  auto idx = torch::arange(n);
  return TrainData(GraphOperators(g), NodeFeatures::from_dense(x), y, idx.lt(60),
                   idx.ge(60) & idx.lt(120), idx.ge(120));
}

struct IntCase {
  std::string kind;
  const char* precision;
  bool row_normalize;
};

// Passes every point through to the QAT hook and records, per node, whether a value
// about to be rounded (v = h / scale in the fake-quantized float path) lay within a
// tolerance of a rounding boundary x.5, where the integer model may legitimately round
// the other way. Its arithmetic differs from the float path by float rounding, fixed-point
// multipliers (2^-31 relative) and biases held to 2^-16 codes (GCN, SAGE): 1e-5 codes
// covers these, and a value this close to x.5 occurs with probability 2e-5.
class TieRecorder : public QuantHook {
 public:
  static constexpr double kTieTolerance = 1e-5;

  TieRecorder(std::shared_ptr<QatHook> inner, int64_t num_nodes, int64_t num_layers)
      : inner_(std::move(inner)),
        num_layers_(num_layers),
        tainted_hops_(static_cast<size_t>(num_layers + 1),
                      torch::zeros({num_nodes}, torch::kBool)) {}

  bool quantizes_layers() const override { return true; }
  void begin_forward(const GraphOperators& ops, bool training) override {
    inner_->begin_forward(ops, training);
  }
  NodeFeatures embedding(int64_t layer, const NodeFeatures& h, const GraphOperators& ops) override {
    // Before layer `layer`'s aggregation: a tie here can reach num_layers - layer hops.
    record(layer, QuantRole::kEmbedding, h.to_dense(), num_layers_ - layer);
    return inner_->embedding(layer, h, ops);
  }
  at::Tensor attention(int64_t layer, const at::Tensor& alpha, const CsrGraph& g) override {
    return inner_->attention(layer, alpha, g);
  }
  at::Tensor weight(int64_t layer, int64_t index, const at::Tensor& w) override {
    return inner_->weight(layer, index, w);
  }
  at::Tensor activation(int64_t layer, QuantRole role, const at::Tensor& h) override {
    const int64_t hops = role == QuantRole::kLinear ? num_layers_ - layer : num_layers_ - layer - 1;
    record(layer, role, h, hops);
    return inner_->activation(layer, role, h);
  }

  // Nodes whose logits a detected tie can reach: a tie at node j before k more
  // aggregations reaches j's k-hop out-neighbourhood (edges j -> i, self included).
  at::Tensor tainted(const CsrGraph& g) const {
    const at::Tensor indptr = g.indptr(), indices = g.indices();
    const int64_t* ip = indptr.data_ptr<int64_t>();
    const int64_t* ix = indices.data_ptr<int64_t>();
    const int64_t n = g.num_nodes();
    at::Tensor reach = torch::zeros({n}, torch::kBool);
    for (int64_t k = num_layers_; k >= 0; --k) {  // fold the ties with k hops left in
      reach = reach | tainted_hops_[k];
      if (k == 0) break;
      at::Tensor next = reach.clone();
      const bool* r = reach.data_ptr<bool>();
      bool* out = next.data_ptr<bool>();
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t e = ip[i]; e < ip[i + 1] && !out[i]; ++e) out[i] = r[ix[e]];
      }
      reach = next;
    }
    return reach;
  }

 private:
  void record(int64_t layer, QuantRole role, const at::Tensor& h, int64_t hops) {
    const int bits = inner_->bits(layer, role);
    if (bits >= 32) return;
    const double qmax = symmetric_qmax(bits);
    const at::Tensor s = at::scalar_tensor(inner_->scale(layer, role), at::kFloat);
    const at::Tensor v = (h.detach() / s).reshape({h.size(0), -1}).to(torch::kDouble);
    const at::Tensor dist = ((v - v.floor()) - 0.5).abs();
    const at::Tensor tie = (dist < kTieTolerance) & (v.abs() <= qmax + 0.5);
    tainted_hops_[static_cast<size_t>(std::max<int64_t>(hops, 0))] |= tie.any(1);
  }

  std::shared_ptr<QatHook> inner_;
  int64_t num_layers_;
  std::vector<at::Tensor> tainted_hops_;  // [k]: nodes with a tie k aggregations before the end
};

TEST(IntegerModel, AgreesWithTheFakeQuantizedModelItWasConvertedFrom) {
  const std::vector<IntCase> cases = {{"gcn", "int8", true},   {"gcn", "int4", false},
                                      {"sage", "int8", false}, {"sage", "int4", true},
                                      {"gin", "int8", false},  {"gin", "int4", false}};
  for (const IntCase& c : cases) {
    for (cpu::Isa isa : testing::isas()) {
      testing::IsaGuard guard(isa);
      TrainData data = small_problem(5, c.row_normalize);
      torch::manual_seed(6);
      Preset p = make_preset("kipf", c.kind, data.x.num_cols(), 3);
      p.model.row_normalize_input = c.row_normalize;
      p.optim.epochs = 40;
      GnnModel model(p.model);
      QatConfig qc = QatConfig::preset(c.precision);
      qc.degree_quant = true;
      auto hook = std::make_shared<QatHook>(qc);
      model.set_quant_hook(hook);
      const TrainResult trained = train_full_batch(model, data, p.optim);
      const std::string what = c.kind + " " + c.precision + " on " + cpu::isa_name(isa);
      // Chance is 33%; the features make the task easy, so a model that learned nothing
      // (or whose quantization broke training) fails here.
      EXPECT_GE(trained.test_acc, 80.0) << what;
      torch::NoGradGuard no_grad;
      const int64_t n = data.ops.num_nodes();
      auto recorder = std::make_shared<TieRecorder>(hook, n, p.model.num_layers);
      model.set_quant_hook(recorder);
      const at::Tensor fake = model.forward(data.ops, data.x);
      model.set_quant_hook(hook);
      EXPECT_TRUE(model.forward(data.ops, data.x).equal(fake)) << what << ": recorder changed it";
      model.set_quant_hook(nullptr);
      const IntegerModel im = IntegerModel::convert(model, *hook);
      const QuantizedInput qx = im.quantize_input(data.x);
      const at::Tensor logits = im.forward(data.ops, qx);
      // Cached per-graph multipliers: a second forward, and one over a rebuilt graph.
      EXPECT_TRUE(im.forward(data.ops, qx).equal(logits));
      const CsrGraph& g0 = data.ops.graph();
      GraphOperators rebuilt(CsrGraph(g0.indptr().clone(), g0.indices().clone()));
      EXPECT_TRUE(im.forward(rebuilt, qx).equal(logits));
      EXPECT_GE(masked_accuracy(logits, data.y, data.test_mask), 80.0) << what;

      const double spread = fake.abs().max().item<double>();
      const at::Tensor diff = (logits - fake).abs().amax(1);
      if (c.kind == "gin") {
        // GIN's integer path is not the float path's arithmetic: it holds the self-term
        // weight (1 + eps) in 2^-16 units (up to ~1e-3 codes off) and folds W2's bias into
        // the accumulator rounded to a whole unit s_hid s_w2[o]; its last layer
        // dequantizes an integer accumulator where the float path runs a float GEMM.
        // Rounding boundaries are too fuzzy for a per-node tie test (nearly every node
        // is within reach of one), so GIN gets the aggregate bounds measured on this
        // problem: 8 of 300 nodes off by more than float rounding at most.
        const double agree =
            logits.argmax(1).eq(fake.argmax(1)).to(torch::kDouble).mean().item<double>();
        EXPECT_GE(agree, 0.99) << what;
        EXPECT_GE(diff.le(1e-5 * spread).to(torch::kDouble).mean().item<double>(), 0.96) << what;
        continue;
      }
      // GCN, SAGE: the same arithmetic. On every node no detected tie can reach, the
      // logits are bitwise the fake-quantized model's (both dequantize the same codes as
      // code * s_agg + bias in float).
      const at::Tensor tainted = recorder->tainted(g0);
      const int64_t num_tainted = tainted.sum().item<int64_t>();
      EXPECT_LE(num_tainted, n / 2) << what << ": too many ties for the check to mean much";
      const at::Tensor bad = diff.gt(0) & ~tainted;
      EXPECT_EQ(bad.sum().item<int64_t>(), 0)
          << what << ": logits differ on nodes without a rounding tie, e.g. node "
          << (bad.any().item<bool>() ? bad.nonzero()[0][0].item<int64_t>() : -1) << " by "
          << (bad.any().item<bool>() ? diff.masked_select(bad).max().item<double>() : 0.0)
          << " (spread " << spread << "; " << num_tainted << " nodes near ties)";
    }
  }
}

TEST(IntegerModel, RejectsModelsWithoutIntegerKernelsOrMixedBits) {
  Preset p = make_preset("kipf", "gat", 8, 3);
  GnnModel gat(p.model);
  QatHook hook(QatConfig::preset("int8"));
  EXPECT_THROW(IntegerModel::convert(gat, hook), c10::Error);
  Preset g = make_preset("kipf", "gcn", 8, 3);
  GnnModel gcn(g.model);
  QatConfig mixed = QatConfig::preset("int8");
  mixed.policy = BitPolicy::parse("bits=8;agg=4");
  QatHook mixed_hook(mixed);
  EXPECT_THROW(IntegerModel::convert(gcn, mixed_hook), c10::Error);
}

}  // namespace
}  // namespace qgnn

namespace qgnn {
namespace {

TEST(QatConfigCheck, SpecsTheIntegerKernelsCannotComputeAreRefusedNotIgnored) {
  // Accepted: widths, and axes equal to what the kernels compute.
  for (const char* spec :
       {"bits=4;att=8", "emb=8;layer1.emb=4", "bits=8;gran=tensor", "bits=8;agg.range=percentile",
        "bits=8;w.range=minmax", "bits=8;range=percentile"}) {
    QatConfig c = QatConfig::preset("int8");
    c.policy = BitPolicy::parse(spec);
    EXPECT_NO_THROW(QatHook{c}) << spec;
  }
  for (const auto& [spec, needle] : std::vector<std::pair<std::string, std::string>>{
           {"bits=8;taq=8,4", "SGQuant storage options"},
           {"bits=8;emb.taq=8@<=2,4", "SGQuant storage options"},
           {"bits=8;emb.round=nonzero", "SGQuant storage options"},
           {"bits=8;emb.cols=on", "SGQuant storage options"},
           {"bits=8;layer0.emb.round=nonzero", "at layer0.emb"},
           {"bits=8;emb.layout=auto", "SGQuant storage options"},
           {"bits=8;emb.gran=row", "granularity must be tensor, got row"},
           {"bits=8;scheme=affine", "symmetric codes, not affine"},
           {"bits=8;layer1.lin.scheme=affine", "at layer1.lin"},
           {"bits=8;w.range=percentile", "range minmax"},
           {"bits=8;emb=half", "half precision has no integer form"},
           {"bits=8;lin.layout=nibble", "8-bit integer codes are stored in layout bitmap"},
           {"bits=4;agg.layout=bitmap", "4-bit integer codes are stored in layout nibble"}}) {
    QatConfig c = QatConfig::preset("int8");
    c.policy = BitPolicy::parse(spec);
    try {
      QatHook hook(c);
      ADD_FAILURE() << spec << " was accepted";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << spec << ": " << e.what();
    }
    // A saved state carrying such a policy is refused the same way.
    QatHook ok(QatConfig::preset("int8"));
    const std::string state = "{\"ranges\": [], \"config\": " + c.to_json() + "}";
    EXPECT_THROW(ok.load_state(state), c10::Error) << spec;
  }
}

// A range clause overrides the config's observer at its points: the percentile range of
// a tensor with one outlier is narrower than its min-max range.
TEST(QatConfigCheck, RangeClauseChoosesTheObserverPerPoint) {
  torch::manual_seed(0);
  QatConfig c = QatConfig::preset("int8");
  c.policy = BitPolicy::parse("bits=8;agg.range=percentile");
  c.percentile = 99.0;
  QatHook hook(c);
  hook.begin_forward(GraphOperators(testing::random_graph(10, 2.0, 1)), /*training=*/true);
  at::Tensor h = torch::randn({100, 50});
  h[0][0] = 1000.0f;
  hook.activation(0, QuantRole::kLinear, h);
  hook.activation(0, QuantRole::kAggregate, h);
  EXPECT_FLOAT_EQ(hook.ranges().at({0, QuantRole::kLinear}).hi, 1000.0f);  // momentum: extremes
  EXPECT_LT(hook.ranges().at({0, QuantRole::kAggregate}).hi, 10.0f);       // percentile
}

}  // namespace
}  // namespace qgnn
